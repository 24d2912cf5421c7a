package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The fixture is what CABPK (cluster-api v1.14, bootstrap/kubeadm/pkg/cloudinit/node.go) emits
// for a worker: jinja header, write_files with text/base64/gzip+base64 content, the join
// configuration, the /run/cluster-api placeholder, runcmd strings ending in kubeadm join &&
// sentinel, and a users section this runner ignores.
func setup(t *testing.T, userData string) (string, *[]string) {
	t.Helper()
	root = t.TempDir()
	errs = nil
	logOut = os.Stderr
	seed := filepath.Join(root, "run/cidata")
	os.MkdirAll(seed, 0o755)
	os.WriteFile(filepath.Join(seed, "meta-data"), []byte("instance-id: uid-1\nlocal-hostname: node-a\nprovider-id: groundwork://fra1/a01-u05\n"), 0o644)
	os.WriteFile(filepath.Join(seed, "user-data"), []byte(userData), 0o644)
	var scripts []string
	runScript = func(script, id string) int {
		b, _ := os.ReadFile(script)
		scripts = append(scripts, string(b))
		// kubeadm join "succeeds": the command after && runs, as sh would.
		if strings.Contains(string(b), "kubeadm join") {
			os.MkdirAll(at("/run/cluster-api"), 0o755)
			os.WriteFile(at(sentinel), []byte("success\n"), 0o644)
		}
		return 0
	}
	return seed, &scripts
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(at(p))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCABPKJoinFixture(t *testing.T) {
	fixture, err := os.ReadFile("../../testdata/cabpk-join.yaml")
	if err != nil {
		t.Fatal(err)
	}
	seed, scripts := setup(t, string(fixture))
	run(seed)
	if len(errs) != 0 {
		t.Fatalf("errors: %v", errs)
	}
	if got := read(t, "/etc/groundwork/bootstrap-note.txt"); got != "written by a KubeadmConfig's spec.files for node-a (uid-1)\n" {
		t.Errorf("jinja: %q", got)
	}
	if got := read(t, "/etc/default/kubelet"); got != "KUBELET_EXTRA_ARGS=\"--node-labels=groundwork.dev/smoke=true\"\n" {
		t.Errorf("base64: %q", got)
	}
	if got := read(t, "/etc/groundwork/compressed.txt"); got != "hello from a gzip+base64 file\n" {
		t.Errorf("gzip+base64: %q", got)
	}
	join := read(t, "/run/kubeadm/kubeadm-join-config.yaml")
	for _, want := range []string{"name: 'node-a'", "value: 'groundwork://fra1/a01-u05'", "kind: JoinConfiguration"} {
		if !strings.Contains(join, want) {
			t.Errorf("join config lacks %q:\n%s", want, join)
		}
	}
	for p, mode := range map[string]os.FileMode{"/etc/default/kubelet": 0o640, "/etc/groundwork/compressed.txt": 0o600, "/run/kubeadm/kubeadm-join-config.yaml": 0o640} {
		st, err := os.Stat(at(p))
		if err != nil || st.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v (%v)", p, st.Mode().Perm(), mode, err)
		}
	}
	if len(*scripts) != 1 {
		t.Fatalf("want one runcmd script, got %d", len(*scripts))
	}
	want := "#!/bin/sh\n" +
		"echo pre-kubeadm: $(hostname) $(cat /etc/groundwork/compressed.txt)\n" +
		"swapoff -a || true\n" +
		"kubeadm join --config /run/kubeadm/kubeadm-join-config.yaml  && echo success > /run/cluster-api/bootstrap-success.complete\n" +
		"echo post-kubeadm: kubelet $(systemctl is-active kubelet)\n"
	if (*scripts)[0] != want {
		t.Errorf("runcmd script:\n%s\nwant:\n%s", (*scripts)[0], want)
	}
	// A second boot of the same instance runs no per-instance module again.
	run(seed)
	if len(*scripts) != 1 || len(errs) != 0 {
		t.Errorf("second boot: %d scripts, errors %v", len(*scripts), errs)
	}
}

func TestMissingSentinelIsAnError(t *testing.T) {
	seed, _ := setup(t, "#cloud-config\nwrite_files:\n- path: /run/cluster-api/placeholder\n  content: x\nruncmd:\n- kubeadm join --config /x && echo success > /run/cluster-api/bootstrap-success.complete\n")
	runScript = func(string, string) int { return 1 } // kubeadm failed
	run(seed)
	if len(errs) != 2 || !strings.Contains(strings.Join(errs, "\n"), "bootstrap-success.complete missing") {
		t.Errorf("errors: %v", errs)
	}
}

func TestRuncmdListsAndPermissions(t *testing.T) {
	seed, scripts := setup(t, "#cloud-config\nruncmd:\n- [sh, -c, \"echo 'a b'\"]\n- echo plain\nwrite_files:\n- path: /a\n  permissions: 0755\n  content: x\n- path: /a\n  append: true\n  content: y\n")
	run(seed)
	if (*scripts)[0] != "#!/bin/sh\n'sh' '-c' 'echo '\\''a b'\\'''\necho plain\n" {
		t.Errorf("script: %q", (*scripts)[0])
	}
	// The appending entry has the default mode (0644), applied as cloud-init does.
	if st, _ := os.Stat(at("/a")); st.Mode().Perm() != 0o644 || read(t, "/a") != "xy" {
		t.Errorf("/a: %v %q", st.Mode(), read(t, "/a"))
	}
}
