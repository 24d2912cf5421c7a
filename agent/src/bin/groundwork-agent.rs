//! The Groundwork agent in the netboot ramdisk: reads its parameters from the kernel command
//! line, registers with the controller's agent API with the machine's inventory, follows its
//! tasks and powers the machine off when told.

use std::path::PathBuf;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Command line (the boot parameters come from the kernel command line).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Kernel command line to read the boot parameters from.
    #[arg(long, default_value = "/proc/cmdline")]
    cmdline: PathBuf,
    /// procfs root (CPUs, memory).
    #[arg(long, default_value = "/proc")]
    proc: PathBuf,
    /// sysfs root (disks, NICs).
    #[arg(long, default_value = "/sys")]
    sys: PathBuf,
    /// MAC of the NIC the machine booted from.
    #[arg(long, default_value = "")]
    boot_mac: String,
    /// Do not power the machine off at the end (tests).
    #[arg(long)]
    no_poweroff: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let logs = agent::logs::LogBuffer::default();
    tracing_subscriber::registry()
        .with(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with(tracing_subscriber::fmt::layer().with_target(false))
        .with(logs.layer())
        .init();
    let cmdline = std::fs::read_to_string(&args.cmdline).unwrap_or_default();
    let Some(params) = agent::cmdline::parse(&cmdline) else {
        tracing::error!(path = %args.cmdline.display(), "no groundwork.agent on the kernel command line");
        return std::process::ExitCode::from(2);
    };
    let inventory = agent::inventory::collect(&args.proc, &args.sys);
    let options = agent::run::RunOptions {
        sys: args.sys.clone(),
        logs: Some(logs),
        ..Default::default()
    };
    match agent::run::run(&params, inventory, &args.boot_mac, &options).await {
        Ok(agent::run::Outcome::PowerOff) => {
            tracing::info!("done: powering off");
            if !args.no_poweroff {
                // SAFETY: reboot(2) with RB_POWER_OFF; the ramdisk has nothing left to flush.
                unsafe { libc::sync() };
                unsafe { libc::reboot(libc::RB_POWER_OFF) };
            }
            std::process::ExitCode::SUCCESS
        }
        Ok(agent::run::Outcome::Kexec) => {
            tracing::info!("done: executing the installed OS's kernel");
            if args.no_poweroff {
                return std::process::ExitCode::SUCCESS;
            }
            // Returns only when the kernel refused; the controller's kexec timeout then boots
            // the disk through the BMC.
            let e = agent::kexec::execute();
            tracing::error!(error = %e, "kexec refused");
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            tracing::error!(reason = e.reason(), error = %e, "agent stopped");
            std::process::ExitCode::FAILURE
        }
    }
}
