//! Writes one image to a device with the agent's image writer (benchmarks and manual use).
//!
//! Prints one summary line on success; exits 2 with the error's reason on failure.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use agent::image::{self, Checksum, DirectIo, ImageFormat, ImageSource, WriteOptions};
use clap::{Parser, ValueEnum};

/// Stream an image over HTTP onto a block device, first MiB written last.
#[derive(Debug, Parser)]
#[command(name = "groundwork-agent-write", version)]
struct Args {
    /// Image URL (http or https).
    #[arg(long)]
    url: String,
    /// Checksum of the artifact as served: sha256:HEX or sha512:HEX.
    #[arg(long)]
    checksum: String,
    /// Artifact format: raw, raw+gzip, raw+zstd.
    #[arg(long, default_value = "raw", value_parser = str::parse::<ImageFormat>)]
    format: ImageFormat,
    /// Target block device (or file).
    #[arg(long)]
    device: PathBuf,
    /// Overwrite a device that holds a partition table.
    #[arg(long)]
    allow_partitions: bool,
    /// Direct I/O mode.
    #[arg(long, value_enum, default_value_t = DirectMode::Auto)]
    direct_io: DirectMode,
    /// Write size in MiB.
    #[arg(long, default_value_t = 4)]
    buffer_mib: usize,
    /// Buffers queued towards the disk.
    #[arg(long, default_value_t = 4)]
    queue_depth: usize,
    /// Print progress to stderr every this many seconds (0: never).
    #[arg(long, default_value_t = 0.0)]
    progress_secs: f64,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DirectMode {
    Auto,
    Always,
    Never,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error [{:?}]: {e}", e.reason());
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> Result<(), image::WriteError> {
    let checksum: Checksum = args.checksum.parse()?;
    let options = WriteOptions {
        allow_partitions: args.allow_partitions,
        direct_io: match args.direct_io {
            DirectMode::Auto => DirectIo::Auto,
            DirectMode::Always => DirectIo::Always,
            DirectMode::Never => DirectIo::Never,
        },
        buffer_size: args.buffer_mib << 20,
        queue_depth: args.queue_depth.max(1),
        progress_interval: Duration::from_secs_f64(args.progress_secs.max(0.0)),
        ..WriteOptions::default()
    };
    let client = image::default_client()?;
    let source = ImageSource {
        url: args.url,
        checksum,
        format: args.format,
    };
    let verbose = args.progress_secs > 0.0;
    let report = image::write_image(&client, &source, &args.device, &options, move |p| {
        if !verbose {
            return;
        }
        eprintln!(
            "{:?}: downloaded {} MiB, written {} MiB, {:.1}s",
            p.phase,
            p.downloaded >> 20,
            p.written >> 20,
            p.elapsed.as_secs_f64()
        );
    })
    .await?;
    let secs = report.elapsed.as_secs_f64();
    println!(
        "wrote {} bytes ({} downloaded) to {} in {:.3}s ({:.1} MiB/s), direct_io={}, {}",
        report.image_size,
        report.downloaded,
        args.device.display(),
        secs,
        report.image_size as f64 / (1 << 20) as f64 / secs.max(1e-9),
        report.direct_io,
        report.digest
    );
    Ok(())
}
