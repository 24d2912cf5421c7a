#!/usr/bin/env python3
"""A small stateful IPMI BMC simulator on pyghmi, for tests.

Serves one BMC per ``--port`` on ``--address`` (127.0.0.1 unless given; all in
one process). Each BMC keeps
its own power state, boot device and boot flags (persistent / EFI bits, which
pyghmi's base class would drop), a fixed system GUID derived from its port, and
answers ``mc info`` / ``mc guid`` / ``chassis power *`` / ``chassis bootdev`` /
``chassis bootparam get 5``. Only RMCP+ cipher suite 3 is offered (a pyghmi
limitation), which is what real old BMCs do too.

Every state change is printed as one JSON line on stdout (flushed), e.g.
``{"port": 6230, "event": "power_reset"}``, so tests can assert on what
the BMC actually received.

With ``--vm-command CMD`` the BMC powers a real machine (LABS.md section 9): power
on runs CMD through the shell with GW_PORT, GW_BOOTDEV (pxe/disk/default) and GW_EFI
(1/0) in its environment; CMD starts a VM in the background and prints its PID as its
last line. Power off kills that PID; the power state *is* whether the process lives, so
it cannot diverge from the machine (a guest that powers itself off reads as off). A
one-time boot override is consumed by the next power on, as on real BMCs.

Usage:
  python3 hack/bmc/ipmi_sim.py --user admin --password secret --port 6230 --port 6231
Prints ``READY`` on stdout once all sockets are bound.
"""

import os
import queue
import signal
import subprocess
import threading
import time

import argparse
import json
import sys
import uuid

import pyghmi.ipmi.bmc as bmc
import pyghmi.ipmi.command as ipmicommand


def emit(**event):
    sys.stdout.write(json.dumps(event, sort_keys=True) + "\n")
    sys.stdout.flush()


class SimBmc(bmc.Bmc):
    vm_command = None

    def __init__(self, authdata, port, power, address="127.0.0.1"):
        guid = uuid.UUID(int=0x5A5A0000_0000_4000_8000_000000000000 + port)
        super().__init__(authdata, port=port, bmcuuid=guid, address=address)
        self.powerstate = power
        self.bootdevice = "default"
        self.bootflags = 0b10000000  # valid, once, legacy
        # Reported by `mc info`.
        self.mfgid = 0x1A2B
        self.prodid = 0x0102
        self.firmwaremajor = 2
        self.firmwareminor = 0x31

    def _event(self, event, **extra):
        emit(port=self.port, event=event, **extra)

    def get_system_guid(self):
        return self.uuid

    def cold_reset(self):
        self._event("cold_reset")
        return 0

    # -- a real VM behind the BMC (only with --vm-command) --
    vm_pid = None
    # Like a real BMC, power changes are applied after the reply: starting or killing QEMU
    # can take longer than ipmitool's 1 s per-packet timeout, and a retransmitted request
    # would otherwise be executed twice (a second cycle eats the one-time boot override).
    _work = None
    _pending = 0

    def _later(self, *steps):
        if self._work is None:
            self._work = queue.Queue()
            threading.Thread(target=self._worker, daemon=True).start()
        self._pending += 1
        self._work.put(steps)

    def _worker(self):
        while True:
            steps = self._work.get()
            try:
                for step in steps:
                    step()
            finally:
                self._pending -= 1

    def _vm_alive(self):
        if self.vm_pid is None:
            return False
        try:
            with open(f"/proc/{self.vm_pid}/stat") as f:
                # A zombie (exited, not yet reaped) is off.
                return f.read().split(") ", 1)[1][0] != "Z"
        except (OSError, IndexError):
            return False

    def _vm_start(self):
        once = not (self.bootflags & 0x40)
        bootdev = self.bootdevice if self.bootflags & 0x80 else "default"
        env = dict(os.environ, GW_PORT=str(self.port), GW_BOOTDEV={"network": "pxe", "hd": "disk"}.get(bootdev, "default"),
                   GW_EFI="1" if self.bootflags & 0x20 else "0")
        out = subprocess.run(self.vm_command, shell=True, env=env, capture_output=True, text=True, timeout=60)
        lines = out.stdout.strip().splitlines()
        if out.returncode != 0 or not lines or not lines[-1].strip().isdigit():
            self._event("vm_start_failed", rc=out.returncode, stderr=out.stderr[-500:])
            return
        self.vm_pid = int(lines[-1].strip())
        self._event("vm_started", pid=self.vm_pid, bootdev=env["GW_BOOTDEV"], efi=env["GW_EFI"] == "1")
        if once:
            self.bootflags &= 0x7F  # a one-time override is used up

    def _vm_stop(self):
        if self._vm_alive():
            os.kill(self.vm_pid, signal.SIGKILL)
            for _ in range(50):
                if not self._vm_alive():
                    break
                time.sleep(0.1)
            self._event("vm_killed", pid=self.vm_pid)
        self.vm_pid = None

    def get_power_state(self):
        if self.vm_command:
            if self._pending:
                return self.powerstate  # a change is being applied
            return "on" if self._vm_alive() else "off"
        return self.powerstate

    def power_off(self):
        self.powerstate = "off"
        if self.vm_command:
            self._later(self._vm_stop)
        self._event("power_off")

    def power_on(self):
        self.powerstate = "on"
        if self.vm_command:
            self._later(lambda: self._vm_alive() or self._vm_start())
        self._event("power_on")

    def power_cycle(self):
        # A cycle of an off machine is refused on real BMCs (0xd5: not
        # supported in present state); an on machine ends up on again.
        if self.get_power_state() != "on":
            self._event("power_cycle_refused")
            return 0xD5
        self._event("power_cycle")
        self.powerstate = "on"
        if self.vm_command:
            self._later(self._vm_stop, self._vm_start)
        return 0

    def power_reset(self):
        self._event("power_reset")
        self.powerstate = "on"
        if self.vm_command:
            self._later(self._vm_stop, self._vm_start)
        return 0

    def power_shutdown(self):
        self.powerstate = "off"
        if self.vm_command:
            self._later(self._vm_stop)
        self._event("power_shutdown")

    def pulse_diag(self):
        self._event("pulse_diag")
        return 0

    def is_active(self):
        return self.get_power_state() == "on"

    def get_boot_device(self):
        return self.bootdevice

    def set_boot_device(self, bootdevice):
        self.bootdevice = bootdevice

    def get_system_boot_options(self, request, session):
        if request["data"][0] == 5:
            device = ipmicommand.boot_devices.get(self.bootdevice, 0)
            data = [1, 5, self.bootflags, device, 0, 0, 0]
            return session.send_ipmi_response(data=data)
        return super().get_system_boot_options(request, session)

    def set_system_boot_options(self, request, session):
        data = request["data"]
        if data[0] == 5 and len(data) >= 3:
            device = (data[2] >> 2) & 0b1111
            if device not in ipmicommand.boot_devices:
                return session.send_ipmi_response(code=0xCC)
            self.bootdevice = ipmicommand.boot_devices[device]
            self.bootflags = data[1]
            self._event(
                "set_boot",
                device=self.bootdevice,
                persistent=bool(data[1] & 0x40),
                efi=bool(data[1] & 0x20),
            )
            return session.send_ipmi_response()
        return super().set_system_boot_options(request, session)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password", required=True)
    parser.add_argument("--port", type=int, action="append", required=True)
    parser.add_argument("--address", default="127.0.0.1",
                        help="address to listen on (one of this host's; the lab gives Pods on its nodes a route to it)")
    parser.add_argument("--power", choices=["on", "off"], default="off")
    parser.add_argument("--vm-command", help="shell command that starts this BMC's VM and prints its PID")
    args = parser.parse_args()
    SimBmc.vm_command = args.vm_command
    auth = {args.user: args.password}
    bmcs = [SimBmc(auth, port, args.power, args.address) for port in args.port]
    emit(event="ready", ports=[b.port for b in bmcs])
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    bmc.Bmc.listen(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
