//! Puts libtorch's library folder on the rpath of every binary this package links (tests, examples,
//! benches, the CLI), so `cargo test` and `cargo run` work without `LD_LIBRARY_PATH`.
//! torch-sys reports the folder as `DEP_TCH_LIBTORCH_LIB` because it declares `links = "tch"`.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
}
