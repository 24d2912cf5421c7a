package main

// `gw-cloud-init net [-seed DIR]`: applies the seed's network-config (netplan v2, the shape
// Groundwork's controller writes: ethernets matched by MAC with addresses, routes / gateway4 and
// nameservers; dhcp4: true runs busybox udhcpc). Without a network-config (or an empty one) every
// ethernet interface tries DHCP, as cloud-init's fallback does.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

type netplan struct {
	Network   *netplan `yaml:"network"` // network-config may wrap everything in "network:"
	Version   int      `yaml:"version"`
	Ethernets map[string]struct {
		Match struct {
			MACAddress string `yaml:"macaddress"`
			Name       string `yaml:"name"`
		} `yaml:"match"`
		SetName   string   `yaml:"set-name"`
		DHCP4     bool     `yaml:"dhcp4"`
		Addresses []string `yaml:"addresses"`
		Gateway4  string   `yaml:"gateway4"`
		MTU       int      `yaml:"mtu"`
		Routes    []struct {
			To  string `yaml:"to"`
			Via string `yaml:"via"`
		} `yaml:"routes"`
		Nameservers struct {
			Addresses []string `yaml:"addresses"`
			Search    []string `yaml:"search"`
		} `yaml:"nameservers"`
	} `yaml:"ethernets"`
}

func sh(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// ifaceByMAC waits up to 5 s for the interface with that MAC (drivers may still be probing).
func ifaceByMAC(mac string) string {
	mac = strings.ToLower(mac)
	for i := 0; i < 50; i++ {
		dirs, _ := filepath.Glob("/sys/class/net/*")
		for _, d := range dirs {
			if b, err := os.ReadFile(d + "/address"); err == nil && strings.TrimSpace(string(b)) == mac {
				return filepath.Base(d)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return ""
}

func dhcp(iface string) error {
	return sh("udhcpc", "-i", iface, "-n", "-q", "-t", "10", "-T", "1", "-s", "/usr/share/udhcpc/default.script")
}

func netMain(seed string) int {
	b, err := os.ReadFile(filepath.Join(seed, "network-config"))
	var np netplan
	if err == nil {
		if err := yaml.Unmarshal(b, &np); err != nil {
			logf("network-config: %v: falling back to DHCP", err)
			np = netplan{}
		}
	}
	if np.Network != nil {
		np = *np.Network
	}
	if len(np.Ethernets) == 0 {
		dirs, _ := filepath.Glob("/sys/class/net/*")
		ok := 0
		for _, d := range dirs {
			name := filepath.Base(d)
			if name == "lo" {
				continue
			}
			if _, err := os.Stat(d + "/device"); err != nil {
				continue // not a physical NIC (bridges, veths)
			}
			sh("ip", "link", "set", name, "up")
			if err := dhcp(name); err != nil {
				logf("DHCP on %s failed: %v", name, err)
				continue
			}
			ok++
		}
		logf("network: no network-config, DHCP on %d interface(s)", ok)
		if ok == 0 {
			return 1
		}
		return 0
	}
	rc := 0
	var dns, search []string
	for id, e := range np.Ethernets {
		iface := e.Match.Name
		if e.Match.MACAddress != "" {
			iface = ifaceByMAC(e.Match.MACAddress)
		} else if iface == "" {
			iface = id
		}
		if iface == "" {
			logf("network: no NIC with MAC %s (%s)", e.Match.MACAddress, id)
			rc = 1
			continue
		}
		if e.SetName != "" && e.SetName != iface {
			if sh("ip", "link", "set", iface, "name", e.SetName) == nil {
				iface = e.SetName
			}
		}
		if e.MTU > 0 {
			sh("ip", "link", "set", iface, "mtu", fmt.Sprint(e.MTU))
		}
		if err := sh("ip", "link", "set", iface, "up"); err != nil {
			logf("network: %v", err)
			rc = 1
			continue
		}
		if e.DHCP4 {
			if err := dhcp(iface); err != nil {
				logf("network: DHCP on %s: %v", iface, err)
				rc = 1
			}
		}
		for _, a := range e.Addresses {
			if err := sh("ip", "addr", "replace", a, "dev", iface); err != nil {
				logf("network: %v", err)
				rc = 1
			}
		}
		gws := []string{}
		if e.Gateway4 != "" {
			gws = append(gws, e.Gateway4)
		}
		for _, r := range e.Routes {
			if r.Via == "" {
				continue
			}
			to := r.To
			if to == "default" || to == "0.0.0.0/0" {
				gws = append(gws, r.Via)
				continue
			}
			if err := sh("ip", "route", "replace", to, "via", r.Via, "dev", iface); err != nil {
				logf("network: %v", err)
			}
		}
		for _, g := range gws {
			if err := sh("ip", "route", "replace", "default", "via", g, "dev", iface); err != nil {
				logf("network: %v", err)
				rc = 1
			}
		}
		dns = append(dns, e.Nameservers.Addresses...)
		search = append(search, e.Nameservers.Search...)
		logf("network: %s (%s) addresses=%s gateway=%s dhcp4=%v", iface, id, strings.Join(e.Addresses, ","), strings.Join(gws, ","), e.DHCP4)
	}
	if len(dns) > 0 {
		var r strings.Builder
		if len(search) > 0 {
			r.WriteString("search " + strings.Join(search, " ") + "\n")
		}
		for _, d := range dns {
			r.WriteString("nameserver " + d + "\n")
		}
		os.WriteFile("/etc/resolv.conf", []byte(r.String()), 0o644)
	}
	return rc
}

func init() {
	if len(os.Args) > 1 && os.Args[1] == "net" {
		seed := "/run/cidata"
		if len(os.Args) > 3 && os.Args[2] == "-seed" {
			seed = os.Args[3]
		}
		os.Exit(netMain(seed))
	}
}
