//! The `tidings` binary: parse the command line, run the command.

fn main() {
    std::process::exit(tidings::cli::main());
}
