//! Process settings that make libtorch's CPU work faster.
//!
//! libtorch takes the memory of every CPU tensor from the C library's `malloc` and gives it back
//! with `free`. glibc serves a block of 32 MB or more (and, by default, some smaller ones) with its
//! own `mmap` and returns it to the kernel on `free`, so the next tensor of that size starts on
//! fresh pages: one page fault and one zeroed 4 KB page per 4 KB, on every layer of every pass. A
//! batch of 64 images at 64x64 after a 32-channel convolution is such a block. On the 2-core
//! machine of the benchmarks, kernel time for these faults was 48% of a LIME run on the small CNN
//! (`perf`), and [`keep_freed_memory`] halved the time of 1,000 forward passes (1.35 s to 0.72 s).
//! PyTorch gains the same when Python is started with `MALLOC_MMAP_MAX_=0
//! MALLOC_TRIM_THRESHOLD_=2147483647 MALLOC_ARENA_MAX=1` in the environment (1.31 s to 0.80 s): the gain is glibc's,
//! not the kernels'.

use crate::Result;

/// Makes glibc's `malloc` keep freed memory in the process for reuse instead of handing it back to
/// the kernel: no block is served by `mmap` any more (`M_MMAP_MAX` = 0), the heap is trimmed
/// only when more than 2 GB at its top is free (`M_TRIM_THRESHOLD`), and threads share the main
/// thread's heap (`M_ARENA_MAX` = 1: glibc gives other threads heaps of at most 64 MB and `mmap`s
/// any larger block whatever the other settings).
///
/// Call it once at the start of a program or notebook, before the work and before starting
/// threads; it affects the whole process and every later allocation, not only the crate's. A thread
/// that allocated before the call keeps its own heap. Values do not change, only the time
/// spent in the kernel's page-fault handler (about half of a forward pass of a small CNN at batch
/// 64 on 2 cores; see the [module documentation](self)).
///
/// The cost: memory a pass freed stays with the process (its resident size stays near its peak
/// use), which is what a process that trains or explains models again and again wants. The kernel
/// registered by `scripts/setup.sh` gets the same settings from its environment.
///
/// Returns `Ok(true)` when the settings were applied, `Ok(false)` on a platform whose C library is
/// not glibc (musl, macOS, Windows), where there is nothing to set, and an error if glibc refused a
/// setting.
///
/// ```
/// // Once, before the work.
/// let applied = cnn_explain::runtime::keep_freed_memory()?;
/// assert_eq!(applied, cfg!(all(target_os = "linux", target_env = "gnu")));
/// // Calling it again changes nothing.
/// assert_eq!(cnn_explain::runtime::keep_freed_memory()?, applied);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn keep_freed_memory() -> Result<bool> {
    imp::keep_freed_memory()
}

/// The settings of [`keep_freed_memory`] as glibc's environment variables, for a process you start
/// (a Python peer, a worker): `Command::new(..).envs(KEEP_FREED_ENV)`. glibc reads them at start-up;
/// other C libraries ignore them.
///
/// ```
/// use cnn_explain::runtime::KEEP_FREED_ENV;
/// # #[cfg(unix)] {
/// let out = std::process::Command::new("sh")
///     .args(["-c", "echo $MALLOC_MMAP_MAX_"])
///     .envs(KEEP_FREED_ENV)
///     .output()?;
/// assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");
/// # }
/// # Ok::<(), std::io::Error>(())
/// ```
pub const KEEP_FREED_ENV: [(&str, &str); 3] = [
    ("MALLOC_MMAP_MAX_", "0"),
    ("MALLOC_TRIM_THRESHOLD_", "2147483647"),
    ("MALLOC_ARENA_MAX", "1"),
];

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod imp {
    use crate::{Error, Result};

    pub fn keep_freed_memory() -> Result<bool> {
        for (param, value, name) in [
            (libc::M_MMAP_MAX, 0, "M_MMAP_MAX"),
            (libc::M_TRIM_THRESHOLD, libc::c_int::MAX, "M_TRIM_THRESHOLD"),
            (libc::M_ARENA_MAX, 1, "M_ARENA_MAX"),
        ] {
            // SAFETY: mallopt only changes malloc's parameters; it is thread-safe in glibc (it
            // takes the arena locks) and has no preconditions on its arguments.
            if unsafe { libc::mallopt(param, value) } != 1 {
                return Err(Error::invalid(
                    "keep_freed_memory",
                    format!(
                        "glibc refused mallopt({name}, {value}): the settings before it stay applied, \
                         this one and those after it keep the defaults"
                    ),
                ));
            }
        }
        Ok(true)
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod imp {
    use crate::Result;

    pub fn keep_freed_memory() -> Result<bool> {
        Ok(false)
    }
}
