#!/usr/bin/env python3
"""A small stateful IPMI BMC simulator on pyghmi, for tests.

Serves one BMC per ``--port`` on 127.0.0.1 (all in one process). Each BMC keeps
its own power state, boot device and boot flags (persistent / EFI bits, which
pyghmi's base class would drop), a fixed system GUID derived from its port, and
answers ``mc info`` / ``mc guid`` / ``chassis power *`` / ``chassis bootdev`` /
``chassis bootparam get 5``. Only RMCP+ cipher suite 3 is offered (a pyghmi
limitation), which is what real old BMCs do too.

Every state change is printed as one JSON line on stdout (flushed), e.g.
``{"port": 6230, "event": "power_reset"}``, so tests can assert on what
the BMC actually received.

Usage:
  python3 hack/bmc/ipmi_sim.py --user admin --password secret --port 6230 --port 6231
Prints ``READY`` on stdout once all sockets are bound.
"""

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
    def __init__(self, authdata, port, power):
        guid = uuid.UUID(int=0x5A5A0000_0000_4000_8000_000000000000 + port)
        super().__init__(authdata, port=port, bmcuuid=guid, address="127.0.0.1")
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

    def get_power_state(self):
        return self.powerstate

    def power_off(self):
        self.powerstate = "off"
        self._event("power_off")

    def power_on(self):
        self.powerstate = "on"
        self._event("power_on")

    def power_cycle(self):
        # A cycle of an off machine is refused on real BMCs (0xd5: not
        # supported in present state); an on machine ends up on again.
        if self.powerstate != "on":
            self._event("power_cycle_refused")
            return 0xD5
        self._event("power_cycle")
        return 0

    def power_reset(self):
        self._event("power_reset")
        self.powerstate = "on"
        return 0

    def power_shutdown(self):
        self.powerstate = "off"
        self._event("power_shutdown")

    def pulse_diag(self):
        self._event("pulse_diag")
        return 0

    def is_active(self):
        return self.powerstate == "on"

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
    parser.add_argument("--power", choices=["on", "off"], default="off")
    args = parser.parse_args()
    auth = {args.user: args.password}
    bmcs = [SimBmc(auth, port, args.power) for port in args.port]
    emit(event="ready", ports=[b.port for b in bmcs])
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    bmc.Bmc.listen(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
