//! Compiles `linkherd/v1/*.proto` with protox (pure Rust: no `protoc` on any
//! machine) and generates prost messages plus tonic clients and servers. The
//! encoded descriptor set is kept for gRPC server reflection.

use std::{env, fs, path::PathBuf};

const PROTOS: &[&str] = &[
    "linkherd/v1/types.proto",
    "linkherd/v1/host.proto",
    "linkherd/v1/interface.proto",
    "linkherd/v1/vlan.proto",
    "linkherd/v1/macvlan.proto",
    "linkherd/v1/probe.proto",
    "linkherd/v1/network.proto",
    "linkherd/v1/attachment.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let mut compiler = protox::Compiler::new(["."])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(PROTOS)?;
    fs::write(
        out_dir.join("linkherd_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;
    // No default stubs: every RPC must be implemented, or the agent does not
    // compile.
    tonic_prost_build::configure().compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}
