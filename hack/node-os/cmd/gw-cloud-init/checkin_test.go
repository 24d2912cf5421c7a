package main

import (
	"os"
	"path/filepath"
	"testing"
)

// The body is what the boot services' POST /metadata/checkin reads (controller/src/boot_services/http.rs).
func TestCheckinBody(t *testing.T) {
	seed := t.TempDir()
	os.WriteFile(filepath.Join(seed, "meta-data"), []byte("instance-id: uid-1\nlocal-hostname: a01-u05\ngroundwork-checkin-url: http://10.10.0.2:8081/metadata/checkin\n"), 0o644)
	url, body, err := checkinBody(seed, "a01-u05", []string{"10.20.0.15/24"})
	if err != nil || url != "http://10.10.0.2:8081/metadata/checkin" {
		t.Fatalf("url %q, err %v", url, err)
	}
	if want := `{"hostname":"a01-u05","addresses":["10.20.0.15/24"],"instanceId":"uid-1"}`; string(body) != want {
		t.Fatalf("body %s, want %s", body, want)
	}
	// Not provisioned by Groundwork: nothing to post, no error.
	os.WriteFile(filepath.Join(seed, "meta-data"), []byte("instance-id: i-1\n"), 0o644)
	if url, _, err := checkinBody(seed, "h", nil); url != "" || err != nil {
		t.Fatalf("url %q, err %v", url, err)
	}
}
