//! The `tidings` binary: parse the command line, run the command.

/// mimalloc instead of glibc's malloc: a signup allocates and frees many
/// small buffers on several threads (HTTP workers, the mail worker, the
/// database pool), where glibc's allocator was about a tenth of the
/// process's CPU time under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(tidings::cli::main());
}
