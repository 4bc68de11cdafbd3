package sign

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp/armor"

	"github.com/strata-os/strata/repo"
)

// OpenPGP packet tags (RFC 4880 section 4.3) that keyrings hold.
const (
	tagSignature     = 2
	tagSecretKey     = 5
	tagPublicKey     = 6
	tagSecretSubkey  = 7
	tagMarker        = 10
	tagTrust         = 12
	tagUserID        = 13
	tagPublicSubkey  = 14
	tagUserAttribute = 17
)

// rawPacket is one OpenPGP packet as it appears in a file: its tag, the
// whole packet (header and body) and the body alone.
type rawPacket struct {
	tag  int
	raw  []byte
	body []byte
}

// splitPackets frames data into OpenPGP packets without interpreting them.
// Partial body lengths, which only data packets may use, are refused:
// keyrings and signatures never contain them.
func splitPackets(data []byte) ([]rawPacket, error) {
	var out []rawPacket
	for off := 0; off < len(data); {
		p, n, err := nextPacket(data[off:])
		if err != nil {
			return nil, fmt.Errorf("%w: OpenPGP packet at offset %d: %v", repo.ErrInvalid, off, err)
		}
		out = append(out, p)
		off += n
	}
	return out, nil
}

func nextPacket(b []byte) (rawPacket, int, error) {
	if len(b) < 2 || b[0]&0x80 == 0 {
		return rawPacket{}, 0, fmt.Errorf("not an OpenPGP packet")
	}
	var tag, hlen, blen int
	if b[0]&0x40 != 0 { // new format
		tag = int(b[0] & 0x3f)
		switch l := int(b[1]); {
		case l < 192:
			hlen, blen = 2, l
		case l < 224:
			if len(b) < 3 {
				return rawPacket{}, 0, fmt.Errorf("truncated header")
			}
			hlen, blen = 3, (l-192)<<8+int(b[2])+192
		case l == 255:
			if len(b) < 6 {
				return rawPacket{}, 0, fmt.Errorf("truncated header")
			}
			hlen = 6
			n := binary.BigEndian.Uint32(b[2:6])
			if uint64(n) > uint64(len(b)) {
				return rawPacket{}, 0, fmt.Errorf("length %d past the end of the data", n)
			}
			blen = int(n)
		default:
			return rawPacket{}, 0, fmt.Errorf("partial body length in a tag %d packet", tag)
		}
	} else { // old format
		tag = int(b[0]>>2) & 0x0f
		switch b[0] & 3 {
		case 0:
			hlen, blen = 2, int(b[1])
		case 1:
			if len(b) < 3 {
				return rawPacket{}, 0, fmt.Errorf("truncated header")
			}
			hlen, blen = 3, int(binary.BigEndian.Uint16(b[1:3]))
		case 2:
			if len(b) < 5 {
				return rawPacket{}, 0, fmt.Errorf("truncated header")
			}
			hlen = 5
			n := binary.BigEndian.Uint32(b[1:5])
			if uint64(n) > uint64(len(b)) {
				return rawPacket{}, 0, fmt.Errorf("length %d past the end of the data", n)
			}
			blen = int(n)
		default: // indeterminate: to the end of the data
			hlen, blen = 1, len(b)-1
		}
	}
	if hlen+blen > len(b) {
		return rawPacket{}, 0, fmt.Errorf("tag %d packet of %d bytes is truncated to %d", tag, blen, len(b)-hlen)
	}
	return rawPacket{tag: tag, raw: b[:hlen+blen], body: b[hlen : hlen+blen]}, hlen + blen, nil
}

// dearmor returns the binary OpenPGP data in data: the bodies of its
// ASCII-armored blocks when it has any, else data itself.
func dearmor(data []byte) ([][]byte, error) {
	const begin = "-----BEGIN PGP "
	if !bytes.Contains(data, []byte(begin)) {
		return [][]byte{data}, nil
	}
	var out [][]byte
	for rest := data; ; {
		i := bytes.Index(rest, []byte(begin))
		if i < 0 {
			break
		}
		// gpg's revocation certificates are armored with a ':' before
		// the BEGIN line so that they are not imported by accident; the
		// user removes it to use one.
		rest = rest[i:]
		blk, err := armor.Decode(bytes.NewReader(rest))
		if err != nil {
			return nil, fmt.Errorf("%w: ASCII-armored OpenPGP data: %v", repo.ErrInvalid, err)
		}
		var body bytes.Buffer
		if _, err := body.ReadFrom(blk.Body); err != nil {
			return nil, fmt.Errorf("%w: ASCII-armored OpenPGP %s: %v", repo.ErrInvalid, strings.ToLower(blk.Type), err)
		}
		out = append(out, body.Bytes())
		rest = rest[len(begin):]
	}
	return out, nil
}

// keyFingerprint returns the fingerprint and key ID of a public key packet
// body (v4: SHA-1, key ID its last 8 bytes; v6: SHA-256, key ID its first
// 8 bytes).
func keyFingerprint(body []byte) (fpr []byte, keyID uint64, err error) {
	if len(body) == 0 {
		return nil, 0, fmt.Errorf("empty key packet")
	}
	switch body[0] {
	case 4:
		h := sha1.New()
		h.Write([]byte{0x99, byte(len(body) >> 8), byte(len(body))})
		h.Write(body)
		fpr = h.Sum(nil)
		return fpr, binary.BigEndian.Uint64(fpr[12:]), nil
	case 6:
		h := sha256.New()
		h.Write([]byte{0x9b})
		h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(body))))
		h.Write(body)
		fpr = h.Sum(nil)
		return fpr, binary.BigEndian.Uint64(fpr[:8]), nil
	}
	return nil, 0, fmt.Errorf("unsupported key version %d", body[0])
}
