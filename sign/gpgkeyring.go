package sign

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/strata-os/strata/fsutil"
	"github.com/strata-os/strata/repo"
)

// keyBlock is one transferable public key (RFC 4880 section 11.1) kept as
// its raw packets, so that keyrings can be merged the way gpg merges them
// without re-encoding anything.
type keyBlock struct {
	primary rawPacket
	fpr     []byte
	keyID   uint64
	// comps[0] holds the signatures directly on the primary key
	// (revocations, direct-key signatures) and has no head; the others
	// are user IDs, user attributes and subkeys with their signatures.
	comps []component
}

type component struct {
	head *rawPacket
	sigs []rawPacket
}

// subkeyIDs returns the fingerprints of the block's subkeys.
func (b *keyBlock) subkeyFprs() [][]byte {
	var out [][]byte
	for _, c := range b.comps {
		if c.head != nil && c.head.tag == tagPublicSubkey {
			if f, _, err := keyFingerprint(c.head.body); err == nil {
				out = append(out, f)
			}
		}
	}
	return out
}

// matches reports whether id (a hex key ID of 8 or 16 digits or a
// fingerprint, with or without 0x) names the block's primary key or one
// of its subkeys.
func (b *keyBlock) matches(id string) bool {
	id = strings.ToUpper(strings.TrimPrefix(strings.TrimPrefix(strings.ReplaceAll(id, " ", ""), "0x"), "0X"))
	for _, f := range append([][]byte{b.fpr}, b.subkeyFprs()...) {
		s := strings.ToUpper(hex.EncodeToString(f))
		if len(id) >= 8 && strings.HasSuffix(s, id) || len(f) == 32 && len(id) == 16 && strings.HasPrefix(s, id) {
			return true
		}
	}
	return false
}

func (b *keyBlock) serialize(w *bytes.Buffer) {
	w.Write(b.primary.raw)
	for _, c := range b.comps {
		if c.head != nil {
			w.Write(c.head.raw)
		}
		for _, s := range c.sigs {
			w.Write(s.raw)
		}
	}
}

// merge adds other's components and signatures that b lacks, as gpg does
// when a key is imported again. It reports whether b changed.
func (b *keyBlock) merge(other *keyBlock) bool {
	changed := false
	for _, oc := range other.comps {
		i := -1
		for j, c := range b.comps {
			if (c.head == nil && oc.head == nil) || (c.head != nil && oc.head != nil && c.head.tag == oc.head.tag && bytes.Equal(c.head.body, oc.head.body)) {
				i = j
				break
			}
		}
		if i < 0 {
			b.comps = append(b.comps, component{head: oc.head, sigs: append([]rawPacket(nil), oc.sigs...)})
			changed = true
			continue
		}
		for _, s := range oc.sigs {
			dup := false
			for _, have := range b.comps[i].sigs {
				dup = dup || bytes.Equal(have.body, s.body)
			}
			if !dup {
				b.comps[i].sigs = append(b.comps[i].sigs, s)
				changed = true
			}
		}
	}
	return changed
}

// publicPacket returns the public form of a key packet: secret key
// packets (gpg --export-secret-keys) lose their secret part.
func publicPacket(p rawPacket) (rawPacket, error) {
	if p.tag != tagSecretKey && p.tag != tagSecretSubkey {
		return p, nil
	}
	pp, err := packet.Read(bytes.NewReader(p.raw))
	if err != nil {
		return rawPacket{}, err
	}
	sk, ok := pp.(*packet.PrivateKey)
	if !ok {
		return rawPacket{}, fmt.Errorf("tag %d packet is not a secret key", p.tag)
	}
	var buf bytes.Buffer
	if err := sk.PublicKey.Serialize(&buf); err != nil {
		return rawPacket{}, err
	}
	q, _, err := nextPacket(buf.Bytes())
	return q, err
}

// keyringSet is an ordered set of key blocks, one per primary key.
type keyringSet struct {
	blocks []*keyBlock
}

// add merges the keys in data (binary or ASCII-armored OpenPGP, public
// or secret keys) into k. It returns the number of keys that were new,
// the number that changed, and the signatures found outside any key
// (revocation certificates), which the caller applies with revoke.
func (k *keyringSet) add(data []byte) (added, updated int, lone []rawPacket, err error) {
	bodies, err := dearmor(data)
	if err != nil {
		return 0, 0, nil, err
	}
	for _, body := range bodies {
		blocks, orphans, err := parseKeyBlocks(body)
		if err != nil {
			return added, updated, nil, err
		}
		lone = append(lone, orphans...)
		for _, nb := range blocks {
			if old := k.find(nb.fpr); old != nil {
				if old.merge(nb) {
					updated++
				}
				continue
			}
			k.blocks = append(k.blocks, nb)
			added++
		}
	}
	return added, updated, lone, nil
}

// revoke adds revocation certificates to the keys that issued them; a
// certificate for a key that is not in k is an error wrapping
// repo.ErrNotFound.
func (k *keyringSet) revoke(sigs []rawPacket) (updated int, err error) {
	for _, s := range sigs {
		b := k.findIssuer(s)
		if b == nil {
			return updated, fmt.Errorf("%w: revocation certificate for a key that is not in the keyring", repo.ErrNotFound)
		}
		if b.merge(&keyBlock{comps: []component{{sigs: []rawPacket{s}}}}) {
			updated++
		}
	}
	return updated, nil
}

func (k *keyringSet) find(fpr []byte) *keyBlock {
	for _, b := range k.blocks {
		if bytes.Equal(b.fpr, fpr) {
			return b
		}
	}
	return nil
}

// findIssuer returns the block whose primary key issued signature s.
func (k *keyringSet) findIssuer(s rawPacket) *keyBlock {
	p, err := packet.Read(bytes.NewReader(s.raw))
	if err != nil {
		return nil
	}
	sig, ok := p.(*packet.Signature)
	if !ok {
		return nil
	}
	for _, b := range k.blocks {
		if sig.IssuerFingerprint != nil && bytes.Equal(sig.IssuerFingerprint, b.fpr) ||
			sig.IssuerFingerprint == nil && sig.IssuerKeyId != nil && *sig.IssuerKeyId == b.keyID {
			return b
		}
	}
	return nil
}

func (k *keyringSet) bytes() []byte {
	var w bytes.Buffer
	for _, b := range k.blocks {
		b.serialize(&w)
	}
	return w.Bytes()
}

// parseKeyBlocks groups packets into key blocks. Trust and marker packets
// (which gpg's keyrings hold) are dropped; secret keys become public
// keys; signatures before any key (revocation certificates) are returned
// apart.
func parseKeyBlocks(data []byte) (blocks []*keyBlock, orphans []rawPacket, err error) {
	pkts, err := splitPackets(data)
	if err != nil {
		return nil, nil, err
	}
	var cur *keyBlock
	for _, p := range pkts {
		switch p.tag {
		case tagTrust, tagMarker:
			continue
		case tagPublicKey, tagSecretKey:
			pub, err := publicPacket(p)
			if err != nil {
				return nil, nil, fmt.Errorf("%w: OpenPGP secret key: %v", repo.ErrInvalid, err)
			}
			fpr, id, err := keyFingerprint(pub.body)
			if err != nil {
				// A key of a version we cannot use (v3): skip it
				// and what belongs to it, as gpg skips v3 keys.
				cur = nil
				continue
			}
			cur = &keyBlock{primary: pub, fpr: fpr, keyID: id, comps: []component{{}}}
			blocks = append(blocks, cur)
		case tagPublicSubkey, tagSecretSubkey, tagUserID, tagUserAttribute:
			if cur == nil {
				continue
			}
			pub, err := publicPacket(p)
			if err != nil {
				return nil, nil, fmt.Errorf("%w: OpenPGP secret subkey: %v", repo.ErrInvalid, err)
			}
			cur.comps = append(cur.comps, component{head: &pub})
		case tagSignature:
			if cur == nil {
				if len(blocks) == 0 {
					orphans = append(orphans, p)
				}
				continue
			}
			c := &cur.comps[len(cur.comps)-1]
			c.sigs = append(c.sigs, p)
		default:
			return nil, nil, fmt.Errorf("%w: unexpected OpenPGP packet (tag %d) in a keyring", repo.ErrInvalid, p.tag)
		}
	}
	if len(blocks) == 0 && len(orphans) == 0 {
		return nil, nil, fmt.Errorf("%w: no OpenPGP keys found", repo.ErrInvalid)
	}
	return blocks, orphans, nil
}

// KeyringSuffix is appended to a remote's name to name the keyring file
// that holds its trusted keys, in the repository directory: OSTree's
// `remote add --gpg-import` and `remote gpg-import` write
// $repo/$remote.trustedkeys.gpg.
const KeyringSuffix = ".trustedkeys.gpg"

// RemoteKeyringPath returns the keyring file of remote in the repository
// at repoPath.
func RemoteKeyringPath(repoPath, remote string) string {
	return filepath.Join(repoPath, remote+KeyringSuffix)
}

// ImportKeys adds OpenPGP public keys to the keyring file at keyringPath
// (created if missing), as `ostree remote gpg-import` does, with
// MergeKeys's rules. The file is written durably (fsutil.WriteFile) and
// only when the import succeeds. It returns the number of keys that were
// not in the keyring before.
func ImportKeys(ctx context.Context, keyringPath string, src []byte, keyIDs []string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	old, err := os.ReadFile(keyringPath)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("import keys: %w", err)
	}
	merged, n, err := MergeKeys(old, src, keyIDs)
	if err != nil {
		return 0, fmt.Errorf("import keys into %s: %w", keyringPath, err)
	}
	if err := fsutil.WriteFile(keyringPath, merged, 0o644); err != nil {
		return 0, fmt.Errorf("import keys: %w", err)
	}
	return n, nil
}

// MergeKeys returns keyring (a binary keyring such as
// $remote.trustedkeys.gpg, or nil) with the public keys of src added: src
// holds keys in binary or ASCII-armored form (`gpg --export [-a]`; secret
// keys contribute only their public part) and revocation certificates for
// keys in keyring or src. Keys already present are merged as gpg merges
// them (new user IDs, subkeys and signatures, revocations included). When
// keyIDs is not empty only the keys it names are taken from src (8- or
// 16-digit key IDs or fingerprints of a primary key or subkey); an ID that
// names no key in src is an error wrapping repo.ErrNotFound.
//
// The result is in the binary keyring format OSTree and gpg read, without
// gpg's trust packets. MergeKeys also returns the number of keys that
// were not in keyring before.
func MergeKeys(keyring, src []byte, keyIDs []string) ([]byte, int, error) {
	var in keyringSet
	_, _, lone, err := in.add(src)
	if err != nil {
		return nil, 0, err
	}
	sel := in
	if len(keyIDs) > 0 {
		sel, lone = keyringSet{}, nil
		for _, id := range keyIDs {
			found := false
			for _, b := range in.blocks {
				if b.matches(id) {
					found = true
					if sel.find(b.fpr) == nil {
						sel.blocks = append(sel.blocks, b)
					}
				}
			}
			if !found {
				return nil, 0, fmt.Errorf("%w: key %q", repo.ErrNotFound, id)
			}
		}
	}
	var out keyringSet
	if len(bytes.TrimSpace(keyring)) > 0 {
		if _, _, _, err := out.add(keyring); err != nil {
			return nil, 0, fmt.Errorf("existing keyring: %w", err)
		}
	}
	added := 0
	for _, b := range sel.blocks {
		var one bytes.Buffer
		b.serialize(&one)
		n, _, _, err := out.add(one.Bytes())
		if err != nil {
			return nil, 0, err
		}
		added += n
	}
	if _, err := out.revoke(lone); err != nil {
		return nil, 0, err
	}
	if len(out.blocks) == 0 {
		return nil, 0, fmt.Errorf("%w: no OpenPGP keys found", repo.ErrInvalid)
	}
	return out.bytes(), added, nil
}
