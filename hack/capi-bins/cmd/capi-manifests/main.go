// Command capi-manifests does the two things of Cluster API's kustomizations that running its
// providers as local processes needs, without kustomize or cert-manager:
//
//	capi-manifests crds CRD_DIR
//	    the CRDs that CRD_DIR/kustomization.yaml lists, with its labels (a provider's contract
//	    labels such as cluster.x-k8s.io/v1beta2: v1beta2), the labels of CRD_DIR/../default's
//	    (cluster.x-k8s.io/provider) and its webhook_in_* conversion patches applied
//	capi-manifests loopback URL CA_FILE NAME_PREFIX FILE...
//	    FILE's objects with every webhook clientConfig that names a Service turned into
//	    URL + the service path with CA_FILE as caBundle; webhook configurations get NAME_PREFIX
//
// Both print multi-document YAML on stdout.
package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"sigs.k8s.io/yaml"
)

type object = map[string]any

func main() {
	var objs []object
	var err error
	switch {
	case len(os.Args) == 3 && os.Args[1] == "crds":
		objs, err = crds(os.Args[2])
	case len(os.Args) >= 6 && os.Args[1] == "loopback":
		objs, err = loopback(os.Args[2], os.Args[3], os.Args[4], os.Args[5:])
	default:
		err = fmt.Errorf("usage: capi-manifests crds CRD_DIR | loopback URL CA_FILE NAME_PREFIX FILE...")
	}
	if err == nil {
		err = write(objs)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "capi-manifests:", err)
		os.Exit(1)
	}
}

func crds(dir string) ([]object, error) {
	var k struct {
		Resources []string
		Labels    []struct{ Pairs map[string]string }
		Patches   []struct{ Path string }
	}
	if err := readYAML(filepath.Join(dir, "kustomization.yaml"), &k); err != nil {
		return nil, err
	}
	labels := map[string]string{}
	for _, l := range k.Labels {
		for key, v := range l.Pairs {
			labels[key] = v
		}
	}
	var d struct {
		Labels []struct{ Pairs map[string]string }
	}
	if err := readYAML(filepath.Join(dir, "..", "default", "kustomization.yaml"), &d); err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	for _, l := range d.Labels {
		for key, v := range l.Pairs {
			labels[key] = v
		}
	}
	conversion := map[string]any{} // CRD name -> spec.conversion
	for _, p := range k.Patches {
		if !strings.HasPrefix(filepath.Base(p.Path), "webhook_in_") {
			continue
		}
		var patch object
		if err := readYAML(filepath.Join(dir, p.Path), &patch); err != nil {
			return nil, err
		}
		conversion[str(patch, "metadata", "name")] = get(patch, "spec", "conversion")
	}
	var out []object
	for _, r := range k.Resources {
		docs, err := readDocs(filepath.Join(dir, r))
		if err != nil {
			return nil, err
		}
		for _, crd := range docs {
			meta := crd["metadata"].(object)
			l, _ := meta["labels"].(object)
			if l == nil {
				l = object{}
			}
			for key, v := range labels {
				l[key] = v
			}
			if len(l) > 0 {
				meta["labels"] = l
			}
			if c, ok := conversion[str(crd, "metadata", "name")]; ok {
				crd["spec"].(object)["conversion"] = c
				delete(conversion, str(crd, "metadata", "name"))
			}
			out = append(out, crd)
		}
	}
	if len(conversion) > 0 {
		return nil, fmt.Errorf("%s: conversion patches for CRDs not in its resources: %v", dir, conversion)
	}
	return out, nil
}

func loopback(url, caFile, prefix string, files []string) ([]object, error) {
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	bundle := base64.StdEncoding.EncodeToString(ca)
	var out []object
	for _, f := range files {
		docs, err := readDocs(f)
		if err != nil {
			return nil, err
		}
		for _, o := range docs {
			if k := str(o, "kind"); strings.HasSuffix(k, "WebhookConfiguration") {
				o["metadata"].(object)["name"] = prefix + str(o, "metadata", "name")
			}
			rewrite(o, strings.TrimSuffix(url, "/"), bundle)
			out = append(out, o)
		}
	}
	return out, nil
}

// rewrite replaces, anywhere in v, a clientConfig naming a Service by a URL with a CA bundle.
func rewrite(v any, url, bundle string) {
	switch v := v.(type) {
	case object:
		for k, child := range v {
			if cc, ok := child.(object); ok && k == "clientConfig" && cc["service"] != nil {
				path, _ := cc["service"].(object)["path"].(string)
				v[k] = object{"url": url + path, "caBundle": bundle}
				continue
			}
			rewrite(child, url, bundle)
		}
	case []any:
		for _, child := range v {
			rewrite(child, url, bundle)
		}
	}
}

var separator = regexp.MustCompile(`(?m)^---\s*$`)

func readDocs(path string) ([]object, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []object
	for _, doc := range separator.Split(string(data), -1) {
		var o object
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if o != nil {
			out = append(out, o)
		}
	}
	return out, nil
}

func readYAML(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func write(objs []object) error {
	var b bytes.Buffer
	for _, o := range objs {
		y, err := yaml.Marshal(o)
		if err != nil {
			return err
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	_, err := os.Stdout.Write(b.Bytes())
	return err
}

func get(o object, path ...string) any {
	var v any = o
	for _, p := range path {
		m, ok := v.(object)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func str(o object, path ...string) string {
	s, _ := get(o, path...).(string)
	return s
}
