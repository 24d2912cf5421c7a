// Command mkimage writes a one-layer container image as an OCI image layout tar archive, the
// form `ctr images import` reads, without a container engine or a registry:
//
//	mkimage -name registry.k8s.io/pause:3.10.1 -o pause.tar -entrypoint /pause SRC:/pause ...
//
// Each SRC:DEST puts the file SRC at DEST (mode 0755) in the layer. The layer is an
// uncompressed tar; every time stamp is zero, so the same inputs give the same bytes (and the
// same image ID). The index carries the name as io.containerd.image.name (containerd) and
// org.opencontainers.image.ref.name (the tag, for other OCI tools).
package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"
	"time"
)

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int               `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    *platform         `json:"platform,omitempty"`
}

type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func die(f string, a ...any) {
	fmt.Fprintf(os.Stderr, "mkimage: "+f+"\n", a...)
	os.Exit(1)
}

// tarball writes files (name -> content, mode) in name order, with their parent directories.
func tarball(files map[string][]byte, modes map[string]int64) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	dirs := map[string]bool{}
	epoch := time.Unix(0, 0)
	for _, n := range names {
		var parents []string
		for d := path.Dir(n); d != "." && d != "/" && d != ""; d = path.Dir(d) {
			parents = append([]string{d}, parents...)
		}
		for _, d := range parents {
			if !dirs[d] {
				dirs[d] = true
				must(tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX}))
			}
		}
		must(tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: modes[n], Size: int64(len(files[n])), ModTime: epoch, Format: tar.FormatPAX}))
		_, err := tw.Write(files[n])
		must(err)
	}
	must(tw.Close())
	return buf.Bytes()
}

func must(err error) {
	if err != nil {
		die("%v", err)
	}
}

func main() {
	name := flag.String("name", "", "image name (registry/repository:tag)")
	out := flag.String("o", "", "output archive")
	entrypoint := flag.String("entrypoint", "", "entrypoint (space-separated argv)")
	var env stringList
	flag.Var(&env, "env", "KEY=VALUE in the image config (repeatable)")
	flag.Parse()
	if *name == "" || *out == "" || *entrypoint == "" || flag.NArg() == 0 {
		die("usage: mkimage -name REF -o OUT.tar -entrypoint CMD [-env K=V] SRC:DEST...")
	}
	files, modes := map[string][]byte{}, map[string]int64{}
	for _, a := range flag.Args() {
		src, dest, ok := strings.Cut(a, ":")
		if !ok {
			die("%q: want SRC:DEST", a)
		}
		b, err := os.ReadFile(src)
		must(err)
		dest = strings.TrimPrefix(path.Clean("/"+dest), "/")
		files[dest], modes[dest] = b, 0o755
	}
	layer := tarball(files, modes)
	if len(env) == 0 {
		env = stringList{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	}
	config, err := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"created":      "1970-01-01T00:00:00Z",
		"config":       map[string]any{"Entrypoint": strings.Fields(*entrypoint), "Env": []string(env)},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{digest(layer)}},
		"history":      []map[string]any{{"created": "1970-01-01T00:00:00Z", "created_by": "groundwork hack/node-os mkimage"}},
	})
	must(err)
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        descriptor{MediaType: "application/vnd.oci.image.config.v1+json", Digest: digest(config), Size: len(config)},
		"layers":        []descriptor{{MediaType: "application/vnd.oci.image.layer.v1.tar", Digest: digest(layer), Size: len(layer)}},
	})
	must(err)
	tag := *name
	if i := strings.LastIndex(tag, ":"); i > strings.LastIndex(tag, "/") {
		tag = tag[i+1:]
	}
	index, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests": []descriptor{{
			MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: digest(manifest), Size: len(manifest),
			Annotations: map[string]string{"io.containerd.image.name": *name, "org.opencontainers.image.ref.name": tag},
			Platform:    &platform{Architecture: "amd64", OS: "linux"},
		}},
	})
	must(err)
	blob := func(b []byte) string { return "blobs/sha256/" + strings.TrimPrefix(digest(b), "sha256:") }
	archive := map[string][]byte{
		"oci-layout":   []byte(`{"imageLayoutVersion":"1.0.0"}`),
		"index.json":   index,
		blob(config):   config,
		blob(manifest): manifest,
		blob(layer):    layer,
	}
	am := map[string]int64{}
	for n := range archive {
		am[n] = 0o644
	}
	must(os.WriteFile(*out, tarball(archive, am), 0o644))
	fmt.Printf("%s %s\n", *name, digest(manifest))
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }
