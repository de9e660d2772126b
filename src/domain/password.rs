//! Admin passwords: argon2id with OWASP parameters (argon2 0.6 defaults).
//!
//! argon2's cost is memory: 19 MiB of work area per hash. Allocating it per
//! call, as `Argon2::verify_password` does, hands each freed area back to
//! glibc, which keeps it in whichever arena the thread used: a login flood
//! grew the process by ~19 MiB per blocking thread and never shrank. So
//! every hash and check here borrows one of at most [`POOL_SIZE`] work areas,
//! allocated on first use and kept for the life of the process; a caller
//! beyond that waits for one to come back. Memory for passwords is thus
//! `POOL_SIZE` × the area the parameters ask for, whatever the load.

use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand::RngCore;

use super::token::constant_time_eq;

/// Work areas that exist at most (one per concurrent hash).
pub const POOL_SIZE: usize = 2;
/// The largest work area a stored hash may ask for, in 1 KiB blocks
/// (64 MiB): a hash with a bigger `m` is refused rather than allocated.
const MAX_BLOCKS: usize = 64 * 1024;

/// The work areas not in use, and how many exist.
struct Pool {
    state: Mutex<PoolState>,
    returned: Condvar,
}

struct PoolState {
    free: Vec<Vec<Block>>,
    created: usize,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        state: Mutex::new(PoolState {
            free: Vec::with_capacity(POOL_SIZE),
            created: 0,
        }),
        returned: Condvar::new(),
    })
}

/// A borrowed work area; going out of scope gives it back.
struct Lease {
    area: Vec<Block>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let pool = pool();
        lock(&pool.state).free.push(std::mem::take(&mut self.area));
        pool.returned.notify_one();
    }
}

/// The pool's state is a list and a count, valid whatever a panicking
/// holder was doing: a poisoned lock is used as is.
fn lock(state: &Mutex<PoolState>) -> MutexGuard<'_, PoolState> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A work area of at least `blocks` blocks: a free one, a new one while
/// fewer than [`POOL_SIZE`] exist, or the next one given back. Blocks the
/// thread while waiting (callers run on blocking threads).
fn lease(blocks: usize) -> Lease {
    let pool = pool();
    let mut state = lock(&pool.state);
    let mut area = loop {
        if let Some(area) = state.free.pop() {
            break area;
        }
        if state.created < POOL_SIZE {
            state.created += 1;
            break Vec::new();
        }
        state = pool
            .returned
            .wait(state)
            .unwrap_or_else(PoisonError::into_inner);
    };
    drop(state);
    if area.len() < blocks {
        // First use, or parameters bigger than any seen so far: grow once.
        area.resize(blocks, Block::new());
    }
    Lease { area }
}

/// Hashes `password` with a fresh salt into a PHC string.
pub fn hash(password: &str) -> anyhow::Result<String> {
    let params = Params::default();
    let mut salt = [0u8; Salt::RECOMMENDED_LENGTH];
    rand::thread_rng().fill_bytes(&mut salt);
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut lease = lease(params.block_count());
    argon2
        .hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, &mut lease.area)
        .map_err(|e| anyhow::anyhow!("hashing password: {e}"))?;
    drop(lease);
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params)
            .map_err(|e| anyhow::anyhow!("hashing password: {e}"))?,
        salt: Some(Salt::new(&salt).map_err(|e| anyhow::anyhow!("hashing password: {e}"))?),
        hash: Some(Output::new(&out).map_err(|e| anyhow::anyhow!("hashing password: {e}"))?),
    };
    Ok(phc.to_string())
}

/// True when `password` matches the stored PHC string: the hash is
/// recomputed with the stored algorithm, version, parameters and salt into
/// a buffer of the stored hash's length and compared in constant time. A
/// string that does not parse, or asks for more than 64 MiB, never matches.
pub fn verify(password: &str, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = parsed.algorithm.as_str().parse::<Algorithm>() else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let blocks = params.block_count();
    if blocks > MAX_BLOCKS {
        return false;
    }
    let mut out = [0u8; Output::MAX_LENGTH];
    let Some(out) = out.get_mut(..expected.len()) else {
        return false;
    };
    let argon2 = Argon2::new(algorithm, version, params);
    let mut lease = lease(blocks);
    let computed = argon2
        .hash_password_into_with_memory(password.as_bytes(), &salt, &mut *out, &mut lease.area)
        .is_ok();
    drop(lease);
    computed && constant_time_eq(out, expected.as_bytes())
}

#[cfg(test)]
mod tests {
    use argon2::password_hash::PasswordHasher;

    #[test]
    fn round_trip() {
        let h = super::hash("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(super::verify("correct horse battery", &h));
        assert!(!super::verify("wrong", &h));
    }

    #[test]
    fn reads_hashes_made_by_the_argon2_crate_with_other_parameters() {
        // Stored before this module pooled memory, or with other costs.
        let params = argon2::Params::new(8 * 1024, 1, 2, Some(16)).unwrap();
        let argon2 =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let h = argon2.hash_password(b"s3cret").unwrap().to_string();
        assert!(super::verify("s3cret", &h));
        assert!(!super::verify("s3cre", &h));
        let default = argon2::Argon2::default()
            .hash_password(b"s3cret")
            .unwrap()
            .to_string();
        assert!(super::verify("s3cret", &default));
    }

    #[test]
    fn garbage_and_oversized_hashes_never_match() {
        for stored in [
            "",
            "plain",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$",
            "$argon2id$v=19$m=4000000,t=1,p=1$c2FsdHNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "$scrypt$ln=15,r=8,p=1$c2FsdHNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert!(!super::verify("x", stored), "{stored}");
        }
    }

    #[test]
    fn many_threads_share_the_pool() {
        let h = super::hash("pw").unwrap();
        let threads: Vec<_> = (0..6)
            .map(|i| {
                let h = h.clone();
                std::thread::spawn(move || super::verify(if i % 2 == 0 { "pw" } else { "no" }, &h))
            })
            .collect();
        let results: Vec<bool> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(results, [true, false, true, false, true, false]);
        assert!(super::lock(&super::pool().state).created <= super::POOL_SIZE);
    }
}
