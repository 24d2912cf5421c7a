// `gw-cloud-init checkin [-seed DIR]`: the installed OS's first-boot check-in to Groundwork. When
// the seed's meta-data names a groundwork-checkin-url, POSTs {"hostname", "addresses",
// "instanceId"} there (the boot services record it on the Server: the provisioning is then
// complete), retrying for up to a minute while the network or the boot services come up. Without
// that key (not provisioned by Groundwork) it does nothing.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"gopkg.in/yaml.v3"
)

type checkIn struct {
	Hostname   string   `json:"hostname"`
	Addresses  []string `json:"addresses"`
	InstanceID string   `json:"instanceId"`
}

// globalAddresses lists the host's global unicast addresses in CIDR form.
func globalAddresses() []string {
	var out []string
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.IsGlobalUnicast() {
			out = append(out, n.String())
		}
	}
	return out
}

// checkinBody reads the seed's meta-data: the URL to post to ("" when there is none) and the body.
func checkinBody(seed, hostname string, addresses []string) (string, []byte, error) {
	raw, err := os.ReadFile(filepath.Join(seed, "meta-data"))
	if err != nil {
		return "", nil, err
	}
	meta := map[string]any{}
	if err := yaml.Unmarshal(raw, &meta); err != nil {
		return "", nil, fmt.Errorf("meta-data: %w", err)
	}
	url, _ := meta["groundwork-checkin-url"].(string)
	if url == "" {
		return "", nil, nil
	}
	if addresses == nil {
		addresses = []string{}
	}
	body, err := json.Marshal(checkIn{Hostname: hostname, Addresses: addresses, InstanceID: fmt.Sprint(meta["instance-id"])})
	return url, body, err
}

func checkinMain(seed string) int {
	host, _ := os.Hostname()
	url, body, err := checkinBody(seed, host, globalAddresses())
	if err != nil {
		logf("check-in: %v", err)
		return 1
	}
	if url == "" {
		logf("check-in: no groundwork-checkin-url in meta-data")
		return 0
	}
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := client.Post(url, "application/json", bytes.NewReader(body))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				logf("check-in: recorded by %s", url)
				return 0
			}
			err = fmt.Errorf("HTTP %d", resp.StatusCode)
			if resp.StatusCode < 500 {
				logf("check-in: refused: %v", err)
				return 1
			}
		}
		if time.Now().After(deadline) {
			logf("check-in: %s: %v (giving up)", url, err)
			return 1
		}
		time.Sleep(time.Second)
	}
}

func init() {
	if len(os.Args) > 1 && os.Args[1] == "checkin" {
		seed := "/run/cidata"
		if len(os.Args) > 3 && os.Args[2] == "-seed" {
			seed = os.Args[3]
		}
		os.Exit(checkinMain(seed))
	}
}
