package container

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/strata-os/strata/errdefs"
	"github.com/strata-os/strata/imgpolicy"
)

// ParsePrivateKey reads an unencrypted ECDSA P-256 private key, PEM "EC
// PRIVATE KEY" (openssl ecparam -genkey) or "PRIVATE KEY" (PKCS #8).
// cosign's own encrypted key files are not read.
func ParsePrivateKey(data []byte) (*ecdsa.PrivateKey, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, fmt.Errorf("%w: not a PEM private key", errdefs.ErrInvalid)
	}
	var k any
	var err error
	switch b.Type {
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("%w: PEM block %q (want EC PRIVATE KEY or PRIVATE KEY; cosign's encrypted keys are not supported)", errdefs.ErrInvalid, b.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: private key: %w", errdefs.ErrInvalid, err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%w: the key is not ECDSA P-256", errdefs.ErrInvalid)
	}
	return ek, nil
}

type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.raw, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mt, nil }

// Sign makes a cosign-compatible signature of the image ref names in a
// registry: a simple-signing payload naming the reference and its manifest
// digest, signed with ECDSA P-256 over its SHA-256, pushed as a one-layer
// manifest under the tag sha256-<hex>.sig (cosign's scheme), which
// sigstoreSigned policies (and cosign verify --key) accept. It returns
// the signed digest. a gives credentials and registries.conf.
func Sign(ctx context.Context, ref ImageRef, key *ecdsa.PrivateKey, a Access) (string, error) {
	if ref.Transport != Registry {
		return "", fmt.Errorf("%w: sign works on registry images, not %s", errdefs.ErrInvalid, ref.Transport)
	}
	rs, err := Resolve(ctx, ref, a)
	if err != nil {
		return "", err
	}
	var p imgpolicy.Payload
	p.Critical.Identity.DockerReference = dockerReference(ref.Name)
	p.Critical.Image.DockerManifestDigest = rs.ManifestDigest
	p.Critical.Type = imgpolicy.SigstorePayloadType
	payload, err := json.Marshal(p)
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(payload)
	sig, err := ecdsa.SignASN1(rand.Reader, key, h[:])
	if err != nil {
		return "", err
	}
	t, opts, err := a.remote(ctx, ref)
	if err != nil {
		return "", err
	}
	repo := t.ref.Context()
	payloadDigest := "sha256:" + hex.EncodeToString(h[:])
	cfg, _ := json.Marshal(map[string]any{
		"architecture": "", "os": "", "config": map[string]any{},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{payloadDigest}},
	})
	cfgSum := sha256.Sum256(cfg)
	if err := remote.WriteLayer(repo, static.NewLayer(payload, types.MediaType(imgpolicy.SigstoreMediaType)), opts...); err != nil {
		return "", fmt.Errorf("pushing the signature payload: %w", t.authError(a.Keychain, 0, err))
	}
	if err := remote.WriteLayer(repo, static.NewLayer(cfg, types.OCIConfigJSON), opts...); err != nil {
		return "", fmt.Errorf("pushing the signature config: %w", t.authError(a.Keychain, 0, err))
	}
	m := Manifest{SchemaVersion: 2, MediaType: mtOCIManifest,
		Config: Descriptor{MediaType: mtOCIConfig, Digest: "sha256:" + hex.EncodeToString(cfgSum[:]), Size: int64(len(cfg))},
		Layers: []Descriptor{{MediaType: imgpolicy.SigstoreMediaType, Digest: payloadDigest, Size: int64(len(payload)),
			Annotations: map[string]string{imgpolicy.SigstoreAnnotation: base64.StdEncoding.EncodeToString(sig)}}},
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	if err := remote.Put(repo.Tag(SigstoreTag(rs.ManifestDigest)), rawManifest{raw, types.OCIManifestSchema1}, opts...); err != nil {
		return "", fmt.Errorf("pushing the signature manifest: %w", t.authError(a.Keychain, 0, err))
	}
	return rs.ManifestDigest, nil
}
