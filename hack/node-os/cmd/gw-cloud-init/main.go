// Command gw-cloud-init is the node OS image's cloud-config runner: the subset of cloud-init that
// Cluster API's kubeadm bootstrap provider (CABPK) emits, read from a NoCloud seed (the config
// drive Groundwork writes: meta-data, user-data, network-config).
//
//	gw-cloud-init [-seed DIR]   run once per boot, from the node's init, after the network is up
//	cloud-init status [--wait]  (the same binary under that name) done | running | error
//
// What it honours, in cloud-init's order:
//   - user-data: "#cloud-config" (optionally after "## template: jinja", as CABPK writes it: the
//     "{{ ds.meta_data.KEY }}" and "{{ v1.KEY }}" variables are replaced from meta-data, keys
//     with "-" also under "_"), a "#!" script, gzip-compressed user-data; anything else is
//     logged and ignored;
//   - bootcmd (every boot), hostname/fqdn, write_files (path, content, encoding text / b64 /
//     base64 / gz / gzip / gz+b64 / gzip+base64 …, permissions as an octal string or YAML 1.1
//     octal, owner user:group, append, defer), runcmd (strings run by sh as they are; lists are
//     quoted argv), all of these once per instance-id, like cloud-init's per-instance modules;
//   - CABPK's convention: its last runcmd writes /run/cluster-api/bootstrap-success.complete
//     when `kubeadm join` succeeded; the runner reports whether that sentinel exists.
//
// Other modules (users, ntp, disk_setup, fs_setup, mounts, packages …) are logged as ignored.
// Output goes to stdout and /var/log/cloud-init-output.log; the result to
// /run/cloud-init/result.json (errors listed) and /var/lib/cloud/instance/boot-finished.
package main

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

const sentinel = "/run/cluster-api/bootstrap-success.complete"

var (
	root                = "/" // tests point it at a directory
	logOut    io.Writer = os.Stdout
	errs      []string
	runScript = execute // tests replace it
)

func logf(f string, a ...any) { fmt.Fprintf(logOut, "gw-cloud-init: "+f+"\n", a...) }

func fail(f string, a ...any) {
	msg := fmt.Sprintf(f, a...)
	errs = append(errs, msg)
	logf("ERROR: %s", msg)
}

// at maps an absolute guest path into root.
func at(p string) string { return filepath.Join(root, p) }

type file struct {
	Path        string    `yaml:"path"`
	Content     string    `yaml:"content"`
	Encoding    string    `yaml:"encoding"`
	Owner       string    `yaml:"owner"`
	Permissions yaml.Node `yaml:"permissions"`
	Append      bool      `yaml:"append"`
	Defer       bool      `yaml:"defer"`
	Source      any       `yaml:"source"`
}

type cloudConfig struct {
	Bootcmd        []yaml.Node `yaml:"bootcmd"`
	WriteFiles     []file      `yaml:"write_files"`
	Runcmd         []yaml.Node `yaml:"runcmd"`
	Hostname       string      `yaml:"hostname"`
	FQDN           string      `yaml:"fqdn"`
	ManageEtcHosts any         `yaml:"manage_etc_hosts"`
}

var handled = map[string]bool{"bootcmd": true, "write_files": true, "runcmd": true, "hostname": true,
	"fqdn": true, "manage_etc_hosts": true, "preserve_hostname": true, "prefer_fqdn_over_hostname": true}

func main() {
	if filepath.Base(os.Args[0]) == "cloud-init" {
		os.Exit(status(os.Args[1:]))
	}
	seed := flag.String("seed", "/run/cidata", "NoCloud seed directory (meta-data, user-data)")
	flag.StringVar(&root, "root", "/", "file system root to act on (for tests)")
	flag.Parse()
	os.MkdirAll(at("/var/log"), 0o755)
	if lf, err := os.OpenFile(at("/var/log/cloud-init-output.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640); err == nil {
		logOut = io.MultiWriter(os.Stdout, lf)
		defer lf.Close()
	}
	writeResult("running")
	run(*seed)
	if len(errs) > 0 {
		writeResult("error")
		logf("finished with %d error(s)", len(errs))
		os.Exit(1)
	}
	writeResult("done")
	logf("finished")
}

func run(seed string) {
	start := time.Now()
	metaRaw, err := os.ReadFile(filepath.Join(seed, "meta-data"))
	if err != nil {
		fail("no meta-data: %v", err)
		return
	}
	meta := map[string]any{}
	if err := yaml.Unmarshal(metaRaw, &meta); err != nil {
		fail("meta-data: %v", err)
		return
	}
	id := fmt.Sprint(meta["instance-id"])
	if meta["instance-id"] == nil || id == "" {
		fail("meta-data has no instance-id")
		return
	}
	ud, err := os.ReadFile(filepath.Join(seed, "user-data"))
	if err != nil && !os.IsNotExist(err) {
		fail("user-data: %v", err)
		return
	}
	if len(ud) > 2 && ud[0] == 0x1f && ud[1] == 0x8b {
		if ud, err = gunzip(ud); err != nil {
			fail("user-data: gzip: %v", err)
			return
		}
	}
	instDir := at("/var/lib/cloud/instances/" + sanitize(id))
	os.MkdirAll(instDir, 0o755)
	os.MkdirAll(at("/var/lib/cloud/data"), 0o755)
	os.WriteFile(at("/var/lib/cloud/data/instance-id"), []byte(id+"\n"), 0o644)
	os.Remove(at("/var/lib/cloud/instance"))
	os.Symlink(instDir, at("/var/lib/cloud/instance"))
	firstBoot := !exists(filepath.Join(instDir, "sem", "per-instance"))
	logf("instance %s (%s boot), user-data %d bytes", id, map[bool]string{true: "first", false: "a later"}[firstBoot], len(ud))

	text := string(ud)
	firstLine, _, _ := strings.Cut(text, "\n")
	firstLine = strings.TrimSpace(firstLine)
	switch {
	case strings.TrimSpace(text) == "":
		logf("empty user-data: nothing to do")
	case strings.HasPrefix(firstLine, "## template:"):
		if !strings.Contains(firstLine, "jinja") {
			fail("unsupported template %q", firstLine)
			break
		}
		_, rest, _ := strings.Cut(text, "\n")
		cloudConfigDoc(render(rest, meta), instDir, id, firstBoot)
	case strings.HasPrefix(firstLine, "#cloud-config"):
		cloudConfigDoc(text, instDir, id, firstBoot)
	case strings.HasPrefix(firstLine, "#!"):
		if firstBoot {
			script := filepath.Join(instDir, "scripts", "user-data")
			os.MkdirAll(filepath.Dir(script), 0o755)
			if err := os.WriteFile(script, ud, 0o700); err != nil {
				fail("user-data script: %v", err)
			} else if code := runScript(script, id); code != 0 {
				fail("user-data script exited %d", code)
			}
		}
	default:
		fail("unsupported user-data (first line %q): only #cloud-config and #! scripts", firstLine)
	}
	if firstBoot {
		os.MkdirAll(filepath.Join(instDir, "sem"), 0o755)
		os.WriteFile(filepath.Join(instDir, "sem", "per-instance"), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644)
	}
	os.WriteFile(filepath.Join(instDir, "boot-finished"), []byte(fmt.Sprintf("%.2f seconds\n", time.Since(start).Seconds())), 0o644)
}

func cloudConfigDoc(text, instDir, id string, firstBoot bool) {
	var keys map[string]yaml.Node
	if err := yaml.Unmarshal([]byte(text), &keys); err != nil {
		fail("cloud-config: %v", err)
		return
	}
	names := make([]string, 0, len(keys))
	for k := range keys {
		if !handled[k] {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	if len(names) > 0 {
		logf("ignored (unsupported by this runner): %s", strings.Join(names, ", "))
	}
	var cc cloudConfig
	if err := yaml.Unmarshal([]byte(text), &cc); err != nil {
		fail("cloud-config: %v", err)
		return
	}
	if len(cc.Bootcmd) > 0 {
		script := filepath.Join(instDir, "scripts", "bootcmd")
		if writeScript(script, cc.Bootcmd, "bootcmd") {
			if code := runScript(script, id); code != 0 {
				fail("bootcmd exited %d", code)
			}
		}
	}
	if name := firstNonEmpty(cc.Hostname, cc.FQDN); name != "" {
		short, _, _ := strings.Cut(name, ".")
		if err := exec.Command("hostname", short).Run(); err != nil && root == "/" {
			fail("hostname %s: %v", short, err)
		}
		os.WriteFile(at("/etc/hostname"), []byte(short+"\n"), 0o644)
	}
	if !firstBoot {
		logf("per-instance modules (write_files, runcmd) already ran for this instance")
		reportSentinel(false)
		return
	}
	for _, deferred := range []bool{false, true} {
		for _, f := range cc.WriteFiles {
			if f.Defer == deferred {
				writeFile(f)
			}
		}
	}
	if len(cc.Runcmd) > 0 {
		script := filepath.Join(instDir, "scripts", "runcmd")
		if writeScript(script, cc.Runcmd, "runcmd") {
			logf("runcmd: %d command(s)", len(cc.Runcmd))
			t := time.Now()
			code := runScript(script, id)
			logf("runcmd exited %d after %.1f s", code, time.Since(t).Seconds())
			if code != 0 {
				fail("runcmd exited %d", code)
			}
		}
	}
	reportSentinel(mentionsClusterAPI(cc))
}

func mentionsClusterAPI(cc cloudConfig) bool {
	for _, f := range cc.WriteFiles {
		if strings.HasPrefix(f.Path, "/run/cluster-api/") {
			return true
		}
	}
	for _, n := range cc.Runcmd {
		if strings.Contains(n.Value, sentinel) {
			return true
		}
	}
	return false
}

func reportSentinel(expected bool) {
	if exists(at(sentinel)) {
		logf("cluster-api bootstrap succeeded (%s exists)", sentinel)
	} else if expected {
		fail("cluster-api bootstrap did not succeed: %s missing (kubeadm failed?)", sentinel)
	}
}

// writeScript turns bootcmd/runcmd items into one sh script, as cloud-init does: a string is a
// shell line as it is, a list is an argv (each word quoted).
func writeScript(path string, items []yaml.Node, what string) bool {
	var b strings.Builder
	b.WriteString("#!/bin/sh\n")
	for i, n := range items {
		switch n.Kind {
		case yaml.ScalarNode:
			b.WriteString(n.Value + "\n")
		case yaml.SequenceNode:
			words := make([]string, 0, len(n.Content))
			for _, w := range n.Content {
				if w.Kind != yaml.ScalarNode {
					fail("%s[%d]: a list item must be a list of strings", what, i)
					return false
				}
				words = append(words, shellQuote(w.Value))
			}
			b.WriteString(strings.Join(words, " ") + "\n")
		default:
			fail("%s[%d]: neither a string nor a list", what, i)
			return false
		}
	}
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, []byte(b.String()), 0o700); err != nil {
		fail("%s: %v", what, err)
		return false
	}
	return true
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// execute runs a script with sh, its output on our log, and returns its exit code.
func execute(script, id string) int {
	cmd := exec.Command("/bin/sh", script)
	cmd.Stdout, cmd.Stderr = logOut, logOut
	cmd.Env = append(os.Environ(), "INSTANCE_ID="+id)
	cmd.Dir = "/"
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		logf("%s: %v", script, err)
		return 127
	}
	return 0
}

func writeFile(f file) {
	if f.Path == "" {
		fail("write_files: an entry without a path")
		return
	}
	if f.Source != nil {
		fail("write_files %s: source (download) is not supported", f.Path)
		return
	}
	data, err := decode(f.Content, f.Encoding)
	if err != nil {
		fail("write_files %s: %v", f.Path, err)
		return
	}
	mode, err := perms(f.Permissions)
	if err != nil {
		fail("write_files %s: %v", f.Path, err)
		return
	}
	p := at(f.Path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		fail("write_files %s: %v", f.Path, err)
		return
	}
	flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if f.Append {
		flags = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	out, err := os.OpenFile(p, flags, mode)
	if err == nil {
		_, err = out.Write(data)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		err = os.Chmod(p, mode)
	}
	if err != nil {
		fail("write_files %s: %v", f.Path, err)
		return
	}
	uid, gid := owner(f.Owner)
	if err := os.Lchown(p, uid, gid); err != nil && os.Geteuid() == 0 {
		fail("write_files %s: chown: %v", f.Path, err)
	}
	logf("wrote %s (%d bytes, %04o)", f.Path, len(data), mode)
}

func decode(content, encoding string) ([]byte, error) {
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "", "text/plain":
		return []byte(content), nil
	case "b64", "base64":
		return b64(content)
	case "gz", "gzip":
		return gunzip([]byte(content))
	case "gz+base64", "gzip+base64", "gz+b64", "gzip+b64":
		b, err := b64(content)
		if err != nil {
			return nil, err
		}
		return gunzip(b)
	default:
		return nil, fmt.Errorf("unknown encoding %q", encoding)
	}
}

func b64(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		if r == ' ' || r == '\n' || r == '\r' || r == '\t' {
			return -1
		}
		return r
	}, s)
	return base64.StdEncoding.DecodeString(s)
}

func gunzip(b []byte) ([]byte, error) {
	r, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// perms reads permissions the way cloud-init (PyYAML, YAML 1.1) does: a string is octal
// ("0640", "0o640", "640"); an unquoted 0640 is YAML 1.1 octal too; an unquoted 420 is decimal.
func perms(n yaml.Node) (os.FileMode, error) {
	if n.Kind == 0 || n.Value == "" {
		return 0o644, nil
	}
	v := strings.TrimPrefix(strings.TrimPrefix(n.Value, "0o"), "0O")
	base := 8
	if n.Tag == "!!int" && !strings.HasPrefix(n.Value, "0") {
		base = 10
	}
	m, err := strconv.ParseUint(v, base, 32)
	if err != nil || m > 0o7777 {
		return 0, fmt.Errorf("bad permissions %q", n.Value)
	}
	return os.FileMode(m&0o777) | extraBits(m), nil
}

func extraBits(m uint64) os.FileMode {
	var x os.FileMode
	if m&0o4000 != 0 {
		x |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		x |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		x |= os.ModeSticky
	}
	return x
}

// owner resolves "user:group" (names or numbers) through /etc/passwd and /etc/group; unknown
// names are an error logged once, and root is used.
func owner(s string) (int, int) {
	if s == "" {
		return 0, 0
	}
	u, g, _ := strings.Cut(s, ":")
	uid := lookup("/etc/passwd", u, 2)
	gid := 0
	if g != "" {
		gid = lookup("/etc/group", g, 2)
	} else if uid > 0 {
		gid = lookupField("/etc/passwd", u, 3)
	}
	return uid, gid
}

func lookup(db, name string, field int) int {
	if n, err := strconv.Atoi(name); err == nil {
		return n
	}
	if name == "root" {
		return 0
	}
	if v := lookupField(db, name, field); v >= 0 {
		return v
	}
	logf("warning: %s has no %q: using root", db, name)
	return 0
}

func lookupField(db, name string, field int) int {
	b, _ := os.ReadFile(at(db))
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) > field && f[0] == name {
			if n, err := strconv.Atoi(f[field]); err == nil {
				return n
			}
		}
	}
	return -1
}

var jinjaVar = regexp.MustCompile(`\{\{\s*([A-Za-z0-9_.\-]+)\s*\}\}`)

// render replaces the jinja variables cloud-init offers that CABPK templates use
// ({{ ds.meta_data.local_hostname }}, {{ v1.local_hostname }}, {{ v1.instance_id }} …).
// An unknown variable becomes CI_MISSING_JINJA_VAR/NAME, as in cloud-init.
func render(text string, meta map[string]any) string {
	vars := map[string]string{}
	for k, v := range meta {
		s := fmt.Sprint(v)
		vars["ds.meta_data."+k] = s
		vars["ds.meta_data."+strings.ReplaceAll(k, "-", "_")] = s
	}
	v1 := map[string]string{
		"local_hostname": fmt.Sprint(meta["local-hostname"]), "instance_id": fmt.Sprint(meta["instance-id"]),
		"cloud_name": "nocloud", "platform": "nocloud", "region": "", "availability_zone": "",
	}
	if z, ok := meta["availability-zone"]; ok {
		v1["availability_zone"] = fmt.Sprint(z)
	}
	for k, v := range v1 {
		vars["v1."+k] = v
		vars[k] = v
	}
	if strings.Contains(text, "{%") {
		fail("jinja: only {{ variable }} substitution is supported, not {%% … %%} blocks")
	}
	return jinjaVar.ReplaceAllStringFunc(text, func(m string) string {
		name := jinjaVar.FindStringSubmatch(m)[1]
		if v, ok := vars[name]; ok {
			return v
		}
		logf("warning: jinja variable %s is undefined", name)
		return "CI_MISSING_JINJA_VAR/" + name
	})
}

func writeResult(state string) {
	os.MkdirAll(at("/run/cloud-init"), 0o755)
	e := errs
	if e == nil {
		e = []string{}
	}
	b, _ := json.MarshalIndent(map[string]any{"v1": map[string]any{"datasource": "DataSourceNoCloud", "status": state, "errors": e}}, "", "  ")
	os.WriteFile(at("/run/cloud-init/result.json"), append(b, '\n'), 0o644)
}

// status implements `cloud-init status [--wait]`: done (exit 0), error (exit 1), running.
func status(args []string) int {
	wait := false
	for _, a := range args {
		if a == "--wait" || a == "-w" {
			wait = true
		}
	}
	if len(args) == 0 || args[0] != "status" {
		fmt.Fprintln(os.Stderr, "this image's cloud-init supports only: cloud-init status [--wait]")
		return 2
	}
	for {
		var r struct {
			V1 struct {
				Status string   `json:"status"`
				Errors []string `json:"errors"`
			} `json:"v1"`
		}
		b, err := os.ReadFile("/run/cloud-init/result.json")
		st := "not started"
		if err == nil && json.Unmarshal(b, &r) == nil {
			st = r.V1.Status
		}
		if st == "done" || st == "error" || !wait {
			fmt.Println("status: " + st)
			for _, e := range r.V1.Errors {
				fmt.Println("  error: " + e)
			}
			if st == "error" {
				return 1
			}
			return 0
		}
		time.Sleep(time.Second)
	}
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == 0 {
			return '_'
		}
		return r
	}, s)
}

func firstNonEmpty(a ...string) string {
	for _, s := range a {
		if s != "" {
			return s
		}
	}
	return ""
}
