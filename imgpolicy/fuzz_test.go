package imgpolicy

import "testing"

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"default":[{"type":"insecureAcceptAnything"}]}`))
	f.Add([]byte(`{"default":[{"type":"reject"}],"transports":{"docker":{"a/b":[{"type":"sigstoreSigned","keyPath":"/k"}]}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("f", data)
		if err != nil {
			return
		}
		for _, tr := range []string{"docker", "oci"} {
			if len(p.Requirements(tr, "a.b.c/d/e:f")) == 0 {
				t.Fatal("an accepted policy gave no requirements")
			}
		}
	})
}

func FuzzCheckPayload(f *testing.F) {
	f.Add([]byte(`{"critical":{"identity":{"docker-reference":"a/b:c"},"image":{"docker-manifest-digest":"sha256:00"},"type":"atomic container signature"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkPayload(data, SimplePayloadType, Requirement{}, Image{DockerReference: "a/b:c", Digest: "sha256:00"})
	})
}
