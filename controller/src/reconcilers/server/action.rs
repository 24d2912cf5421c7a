//! What the decide and lifecycle stages ask the apply stage to do through the BMC.

/// A power action the apply stage performs (after writing status).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerAction {
    /// Power on.
    On,
    /// Power off.
    Off,
    /// Power-cycle for a reboot request.
    Reboot,
    /// Boot from the network once (power on, or power-cycle when on): the ramdisk.
    Netboot,
    /// Boot the installed disk once (power off when on, disk override, power on).
    DiskBoot,
}

impl PowerAction {
    /// Event reason.
    pub fn reason(self) -> &'static str {
        match self {
            Self::On => "PowerOn",
            Self::Off => "PowerOff",
            Self::Reboot => "Reboot",
            Self::Netboot => "Netboot",
            Self::DiskBoot => "DiskBoot",
        }
    }
}
