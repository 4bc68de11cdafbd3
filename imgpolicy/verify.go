package imgpolicy

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
)

// Payload types of the two signature formats.
const (
	SigstorePayloadType = "cosign container image signature"
	SimplePayloadType   = "atomic container signature"
)

// SigstoreMediaType is the media type of a cosign signature layer, and
// SigstoreAnnotation the annotation carrying its base64 signature.
const (
	SigstoreMediaType  = "application/vnd.dev.cosign.simplesigning.v1+json"
	SigstoreAnnotation = "dev.cosignproject.cosign/signature"
)

func keyBytes(r Requirement) ([][]byte, error) {
	if len(r.KeyData) > 0 {
		return [][]byte{r.KeyData}, nil
	}
	paths := r.KeyPaths
	if r.KeyPath != "" {
		paths = append([]string{r.KeyPath}, paths...)
	}
	var out [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("%w: key %s: %w", ErrRejected, p, err)
		}
		out = append(out, b)
	}
	return out, nil
}

// ParsePublicKey reads a PEM "PUBLIC KEY" holding an ECDSA key (cosign's
// cosign.pub).
func ParsePublicKey(data []byte) (*ecdsa.PublicKey, error) {
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "PUBLIC KEY" {
		return nil, errors.New("not a PEM PUBLIC KEY")
	}
	k, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		return nil, err
	}
	ek, ok := k.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("public key of type %T (only ECDSA)", k)
	}
	return ek, nil
}

func checkSigstore(r Requirement, img Image, sigs []SigstoreSignature) error {
	keys, err := keyBytes(r)
	if err != nil {
		return err
	}
	pub, err := ParsePublicKey(keys[0])
	if err != nil {
		return fmt.Errorf("%w: sigstoreSigned key: %w", ErrRejected, err)
	}
	if len(sigs) == 0 {
		return fmt.Errorf("%w: no sigstore signature (tag sha256-<hex>.sig) for %s", ErrRejected, img.Digest)
	}
	var why error
	for _, s := range sigs {
		raw, err := base64.StdEncoding.DecodeString(s.Signature)
		if err != nil {
			why = fmt.Errorf("signature is not base64: %w", err)
			continue
		}
		h := sha256.Sum256(s.Payload)
		if !ecdsa.VerifyASN1(pub, h[:], raw) {
			why = errors.New("signature does not verify with the policy's key")
			continue
		}
		if err := checkPayload(s.Payload, SigstorePayloadType, r, img); err != nil {
			why = err
			continue
		}
		return nil
	}
	return fmt.Errorf("%w: %w", ErrRejected, why)
}

func readKeyRing(data []byte) (openpgp.EntityList, error) {
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte("-----BEGIN")) {
		return openpgp.ReadArmoredKeyRing(bytes.NewReader(data))
	}
	return openpgp.ReadKeyRing(bytes.NewReader(data))
}

func checkSimple(r Requirement, img Image, sigs [][]byte) error {
	keys, err := keyBytes(r)
	if err != nil {
		return err
	}
	var ring openpgp.EntityList
	for _, k := range keys {
		el, err := readKeyRing(k)
		if err != nil {
			return fmt.Errorf("%w: signedBy keys: %w", ErrRejected, err)
		}
		ring = append(ring, el...)
	}
	if len(sigs) == 0 {
		return fmt.Errorf("%w: no GPG signature found for %s (lookaside from registries.d)", ErrRejected, img.Digest)
	}
	var why error
	for _, s := range sigs {
		var in io.Reader = bytes.NewReader(s)
		if bytes.HasPrefix(s, []byte("-----BEGIN")) {
			b, err := armor.Decode(bytes.NewReader(s))
			if err != nil {
				why = err
				continue
			}
			in = b.Body
		}
		md, err := openpgp.ReadMessage(in, ring, nil, nil)
		if err != nil {
			why = err
			continue
		}
		if md.SignedBy == nil {
			why = errors.New("signature by a key that is not in the policy's keyring")
			continue
		}
		body, err := io.ReadAll(io.LimitReader(md.UnverifiedBody, 1<<20))
		if err != nil {
			why = err
			continue
		}
		if md.SignatureError != nil || md.Signature == nil {
			why = fmt.Errorf("bad signature: %v", md.SignatureError)
			continue
		}
		if err := checkPayload(body, SimplePayloadType, r, img); err != nil {
			why = err
			continue
		}
		return nil
	}
	return fmt.Errorf("%w: %w", ErrRejected, why)
}
