package imgpolicy

import (
	"errors"
	"strings"
	"testing"

	"github.com/strata-os/strata/errdefs"
)

func TestRequirementsScopes(t *testing.T) {
	p, err := Parse("test", []byte(`{
		"default": [{"type": "reject"}],
		"transports": {
			"docker": {
				"reg.example.com/ns/app:v1": [{"type": "insecureAcceptAnything"}],
				"reg.example.com/ns": [{"type": "sigstoreSigned", "keyPath": "/k"}],
				"*.example.com": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/g"}],
				"": [{"type": "reject"}, {"type": "insecureAcceptAnything"}]
			},
			"oci": {"/images": [{"type": "insecureAcceptAnything"}]}
		}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ tr, scope, want string }{
		{"docker", "reg.example.com/ns/app:v1", "insecureAcceptAnything"},
		{"docker", "reg.example.com/ns/app:v2", "sigstoreSigned"},
		{"docker", "reg.example.com/ns/sub/app@sha256:00", "sigstoreSigned"},
		{"docker", "reg.example.com/other:v1", "signedBy"},
		{"docker", "a.b.example.com:5000/x:v1", "signedBy"},
		{"docker", "127.0.0.1:5000/x:v1", "reject"},
		{"oci", "/images:v1", "insecureAcceptAnything"},
		{"oci-archive", "/f.tar", "reject"},
	} {
		rs := p.Requirements(tc.tr, tc.scope)
		if rs[0].Type != tc.want {
			t.Errorf("%s %s: %s, want %s", tc.tr, tc.scope, rs[0].Type, tc.want)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	for _, bad := range []string{
		`{}`,
		`{"default": []}`,
		`{"default": [{"type": "prSomethingNew"}]}`,
		`{"default": [{"type": "signedBy", "keyType": "X509Certificates", "keyPath": "/k"}]}`,
		`{"default": [{"type": "sigstoreSigned", "fulcio": {}}]}`,
		`{"default": [{"type": "sigstoreSigned", "keyPath": "/k", "signedIdentity": {"type": "remapIdentity"}}]}`,
		`{"default": [{"type": "insecureAcceptAnything"}], "unknown": 1}`,
	} {
		_, err := Parse("p.json", []byte(bad))
		if !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "p.json") {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

func TestCheckReject(t *testing.T) {
	err := Check([]Requirement{{Type: "insecureAcceptAnything"}, {Type: "reject"}}, Image{}, Signatures{})
	if !errors.Is(err, ErrRejected) {
		t.Fatal(err)
	}
}
