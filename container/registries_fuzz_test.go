package container

import (
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
)

func FuzzRegistriesConf(f *testing.F) {
	f.Add([]byte("unqualified-search-registries = [\"a.test\"]\n[[registry]]\nlocation = \"a.test:5000\"\ninsecure = true\n"))
	f.Add([]byte("[[registry]]\nprefix = \"*.b.test\"\nblocked = true\n"))
	f.Add([]byte("[registries.insecure]\nregistries = [\"c.test\"]\n"))
	f.Add([]byte("[[registry]]\nprefix = \"x.b.test:5000/ns\"\nlocation = \"d.test/y\"\n[[registry.mirror]]\nlocation = \"m.test\"\npull-from-mirror = \"tag-only\"\n"))
	r, _ := name.ParseReference("x.b.test:5000/ns/os:v1")
	f.Fuzz(func(t *testing.T, data []byte) {
		rs := &Registries{}
		if err := rs.merge("f", data); err != nil {
			return
		}
		if e := rs.Find(r); e != nil && prefixMatch(qualifiedName(r), e.Prefix) < 0 {
			t.Fatalf("Find returned %q, which does not match", e.Prefix)
		}
		rs.reference(ImageRef{Registry, "x.b.test:5000/ns/os:v1"})
		if eps, err := rs.pullEndpoints(ImageRef{Registry, "x.b.test:5000/ns/os:v1"}); err == nil && len(eps) == 0 {
			t.Fatal("no endpoint and no error")
		}
	})
}

func FuzzAuthFile(f *testing.F) {
	f.Add([]byte(`{"auths":{"a.test":{"auth":"dXNlcjpwYXNz"},"https://index.docker.io/v1/":{"identitytoken":"t"}}}`))
	f.Add([]byte(`{"credHelpers":{"a.test:5000":"pass","docker.io":"secretservice"},"auths":{"a.test:5000":{"auth":"dXNlcjpwYXNz"}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		af, err := parseAuthFile("f", data)
		if err != nil {
			return
		}
		for key := range af.auths {
			if normalizeAuthKey(key) != key {
				t.Fatalf("key %q is not normalized", key)
			}
		}
		for host, h := range af.helpers {
			if normalizeAuthKey(host) != host || strings.Contains(host, "/") {
				t.Fatalf("helper key %q is not a normalized registry", host)
			}
			if !validHelperName(h) {
				t.Fatalf("helper %q of %q is not a bare name", h, host)
			}
		}
	})
}
