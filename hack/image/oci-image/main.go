// Command oci-image assembles a container image from a root filesystem directory with no
// container engine (go-containerregistry, from the Go module proxy): one layer, a tar written in
// a fixed order with root ownership and one fixed time; the image config (user, entrypoint,
// port, labels, created at that time); written as an OCI image layout and as an OCI archive (a
// tar of that layout, what `ctr images import` reads). The same inputs give the same digest.
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

type labels map[string]string

func (l labels) String() string { return fmt.Sprint(map[string]string(l)) }

func (l labels) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok {
		return fmt.Errorf("label %q: want key=value", v)
	}
	l[k] = val
	return nil
}

func main() {
	rootfs := flag.String("rootfs", "", "root filesystem directory (the image's only layer)")
	out := flag.String("layout", "", "OCI image layout directory to write (must not exist)")
	archive := flag.String("archive", "", "OCI archive (tar of the layout) to write")
	ref := flag.String("ref", "", "image name, e.g. ghcr.io/groundwork-dev/groundwork-controller:dev")
	entrypoint := flag.String("entrypoint", "", "entrypoint (one path, no shell)")
	user := flag.String("user", "65532:65532", "user:group the image runs as")
	port := flag.String("port", "", "exposed port, e.g. 8080/tcp")
	epoch := flag.Int64("epoch", 0, "the time of every file and of the image (SOURCE_DATE_EPOCH)")
	lbl := labels{}
	flag.Var(lbl, "label", "image label key=value (repeatable)")
	flag.Parse()
	if *rootfs == "" || *out == "" || *archive == "" || *ref == "" || *entrypoint == "" {
		fail(fmt.Errorf("-rootfs, -layout, -archive, -ref and -entrypoint are required"))
	}
	at := time.Unix(*epoch, 0).UTC()
	digest, err := build(*rootfs, *out, *archive, *ref, *entrypoint, *user, *port, lbl, at)
	if err != nil {
		fail(err)
	}
	fmt.Println(digest)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "oci-image:", err)
	os.Exit(1)
}

func build(rootfs, out, archive, ref, entrypoint, user, port string, lbl labels, at time.Time) (string, error) {
	var layerTar bytes.Buffer
	if err := tarTree(&layerTar, rootfs, at); err != nil {
		return "", err
	}
	data := layerTar.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return "", err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:   layer,
		History: v1.History{Created: v1.Time{Time: at}, CreatedBy: "hack/image/build.sh"},
	})
	if err != nil {
		return "", err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return "", err
	}
	cfg = cfg.DeepCopy()
	cfg.Created = v1.Time{Time: at}
	cfg.Architecture, cfg.OS = "amd64", "linux"
	cfg.Config.User = user
	cfg.Config.Entrypoint = []string{entrypoint}
	cfg.Config.Env = []string{"PATH=/usr/local/bin:/usr/bin"}
	cfg.Config.Labels = lbl
	if port != "" {
		cfg.Config.ExposedPorts = map[string]struct{}{port: {}}
	}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return "", err
	}
	if _, err := os.Stat(out); err == nil {
		return "", fmt.Errorf("%s exists", out)
	}
	p, err := layout.Write(out, empty.Index)
	if err != nil {
		return "", err
	}
	tag := ref[strings.LastIndex(ref, ":")+1:]
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"io.containerd.image.name":          ref,
		"org.opencontainers.image.ref.name": tag,
	})); err != nil {
		return "", err
	}
	f, err := os.Create(archive)
	if err != nil {
		return "", err
	}
	if err := tarTree(f, out, at); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	digest, err := img.Digest()
	if err != nil {
		return "", err
	}
	return digest.String(), nil
}

// tarTree writes dir's tree to w in lexical order, owned by root, every time set to at: the
// bytes depend on the names, modes and contents only.
func tarTree(w io.Writer, dir string, at time.Time) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil || rel == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(path); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if d.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		hdr.ModTime, hdr.AccessTime, hdr.ChangeTime = at, time.Time{}, time.Time{}
		hdr.Format = tar.FormatPAX
		// Of the file's extended attributes only its capabilities (rootfs.sh's setcap) go in.
		hdr.PAXRecords = nil
		hdr.Xattrs = nil //nolint:staticcheck // cleared on purpose: no other host xattrs in the image
		if info.Mode().IsRegular() {
			if caps, ok := fileCaps(path); ok {
				hdr.PAXRecords = map[string]string{"SCHILY.xattr." + capsXattr: caps}
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

const capsXattr = "security.capability"

// fileCaps returns path's security.capability attribute, if it has one.
func fileCaps(path string) (string, bool) {
	buf := make([]byte, 64)
	n, err := syscall.Getxattr(path, capsXattr, buf)
	if err != nil || n <= 0 {
		return "", false
	}
	return string(buf[:n]), true
}
