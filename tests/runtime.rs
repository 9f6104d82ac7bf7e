//! `runtime::keep_freed_memory`: after it, a large tensor no longer comes from its own `mmap`
//! (which glibc returns to the kernel on free, so the next tensor starts on fresh pages).
//!
//! Its own test binary without the test harness (`harness = false` in Cargo.toml): the setting is
//! process-wide, and the work runs on the main thread, as in a program or a notebook.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn main() {
    use cnn_explain::runtime::keep_freed_memory;
    use tch::{Device, Kind, Tensor};

    // Bytes glibc holds in blocks it got from mmap.
    fn mmapped() -> usize {
        // SAFETY: mallinfo2 only reads malloc's statistics.
        unsafe { libc::mallinfo2() }.hblkhd
    }
    const BYTES: usize = 64 << 20;
    let elems = (BYTES / 4) as i64;
    let ones = move || Tensor::ones([elems], (Kind::Float, Device::Cpu));

    // glibc's default: a 64 MB block is mmapped (above its 32 MB ceiling for the heap).
    let before = mmapped();
    let t = ones();
    let with_default = mmapped() - before;
    assert!(
        with_default >= BYTES,
        "default glibc mmapped {with_default} bytes for a 64 MB tensor"
    );
    drop(t);

    assert!(keep_freed_memory().expect("mallopt accepted"));
    let before = mmapped();
    let t = ones();
    assert_eq!(mmapped(), before, "the 64 MB tensor should come from the heap");
    assert_eq!(t.sum(Kind::Double).double_value(&[]), elems as f64);
    drop(t);
    // A thread started afterwards shares the main heap, so its large tensors do not mmap either.
    std::thread::spawn(move || {
        let t = ones();
        assert_eq!(
            mmapped(),
            before,
            "a new thread's 64 MB tensor should come from the heap"
        );
        drop(t);
    })
    .join()
    .expect("thread");
    println!("runtime: large tensors come from the heap after keep_freed_memory ({with_default} bytes mmapped before)");
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn main() {
    assert!(!cnn_explain::runtime::keep_freed_memory().expect("no-op"));
}
