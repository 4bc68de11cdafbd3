package main

import (
	"context"
	"crypto/ed25519"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/strata-os/strata/objects"
	"github.com/strata-os/strata/repo"
	"github.com/strata-os/strata/sign"
)

func init() {
	var (
		verify, del       bool
		signType, keyFile string
		keysDir           string
	)
	cmd := &cobra.Command{
		Use:   "sign COMMIT [KEY...]",
		Short: "Sign a commit, or verify or delete its signatures",
		Long: `Sign COMMIT with each ed25519 secret KEY (base64, as 'ostree sign' takes it)
or with the secret keys in --keys-file, one per line. With --verify, check
that COMMIT has a signature by one of the public KEYs (or the keys in
--keys-file, or the system's trusted.ed25519 files). With --delete, remove
the signatures made by the given keys (secret or public).`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if signType != "ed25519" {
				return fmt.Errorf("signature type %q is not implemented (only ed25519)", signType)
			}
			r, err := openRepo()
			if err != nil {
				return err
			}
			c, err := r.ResolveRev(args[0])
			if err != nil {
				return err
			}
			keys := args[1:]
			ctx := cmd.Context()
			switch {
			case verify:
				v := &sign.Ed25519Verifier{}
				for _, k := range keys {
					pk, err := sign.ParseEd25519Public(k)
					if err != nil {
						return err
					}
					v.Keys = append(v.Keys, pk)
				}
				if keyFile != "" {
					ks, err := sign.ReadEd25519Keys(keyFile, false)
					if err != nil {
						return err
					}
					for _, k := range ks {
						v.Keys = append(v.Keys, ed25519.PublicKey(k))
					}
				}
				if len(v.Keys) == 0 {
					dirs := sign.SystemKeyDirs
					if keysDir != "" {
						dirs = []string{keysDir}
					}
					if v, err = sign.LoadEd25519KeyDirs(dirs); err != nil {
						return err
					}
				}
				msg, err := sign.VerifyCommit(r, c, []sign.Verifier{v})
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), msg)
				return nil
			case del:
				return deleteSignatures(ctx, r, c, keys)
			}
			var secrets []ed25519.PrivateKey
			for _, k := range keys {
				sk, err := sign.ParseEd25519Secret(k)
				if err != nil {
					return err
				}
				secrets = append(secrets, sk)
			}
			if keyFile != "" {
				ks, err := sign.ReadEd25519Keys(keyFile, true)
				if err != nil {
					return err
				}
				for _, k := range ks {
					secrets = append(secrets, ed25519.PrivateKey(k))
				}
			}
			if len(secrets) == 0 {
				return fmt.Errorf("need at least one KEY to sign with")
			}
			for _, sk := range secrets {
				if err := sign.SignCommit(ctx, r, c, sign.Ed25519Signer{Key: sk}); err != nil {
					return err
				}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&verify, "verify", false, "verify signatures")
	fl.BoolVarP(&del, "delete", "d", false, "delete signatures made by any of the KEYs")
	fl.StringVarP(&signType, "sign-type", "s", "ed25519", "signature type")
	fl.StringVar(&keyFile, "keys-file", "", "read keys from FILE (secret keys to sign, public keys to verify)")
	fl.StringVar(&keysDir, "keys-dir", "", "directory with trusted.ed25519(.d) and revoked.ed25519(.d), instead of /etc/ostree and /usr/share/ostree")
	rootCmd.AddCommand(cmd)
}

// deleteSignatures removes c's ed25519 signatures that verify with any of
// keys (public keys, or secret keys whose public half is used).
func deleteSignatures(ctx context.Context, r *repo.Repo, c objects.Checksum, keys []string) error {
	if len(keys) == 0 {
		return fmt.Errorf("need at least one KEY whose signatures to delete")
	}
	var pubs []ed25519.PublicKey
	for _, k := range keys {
		if sk, err := sign.ParseEd25519Secret(k); err == nil {
			pubs = append(pubs, sk.Public().(ed25519.PublicKey))
			continue
		}
		pk, err := sign.ParseEd25519Public(k)
		if err != nil {
			return fmt.Errorf("%w: %q is neither an ed25519 secret nor public key", repo.ErrInvalid, k)
		}
		pubs = append(pubs, pk)
	}
	data, err := r.ReadMetadata(objects.KindCommit, c)
	if err != nil {
		return err
	}
	return sign.UpdateCommitMeta(ctx, r, c, func(md objects.Metadata) (objects.Metadata, error) {
		sigs, err := sign.Signatures(md, sign.Ed25519Key)
		if err != nil {
			return nil, err
		}
		var keep [][]byte
		for _, s := range sigs {
			drop := false
			for _, p := range pubs {
				drop = drop || (len(s) == ed25519.SignatureSize && ed25519.Verify(p, data, s))
			}
			if !drop {
				keep = append(keep, s)
			}
		}
		return sign.WithSignatures(md, sign.Ed25519Key, keep), nil
	})
}

// signers builds the signers for --sign / --gpg-sign options.
func signers(signType string, keys, gpgKeys []string, gpgHome string) ([]sign.Signer, error) {
	var out []sign.Signer
	if len(keys) > 0 && signType != "ed25519" {
		return nil, fmt.Errorf("signature type %q is not implemented (only ed25519)", signType)
	}
	for _, k := range keys {
		sk, err := sign.ParseEd25519Secret(k)
		if err != nil {
			return nil, err
		}
		out = append(out, sign.Ed25519Signer{Key: sk})
	}
	for _, id := range gpgKeys {
		s, err := newGPGSigner(id, gpgHome)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// newGPGSigner finds the secret key for --gpg-sign=KEYID --gpg-homedir=DIR
// (see sign.NewGPGSigner for what DIR may hold).
var newGPGSigner = func(keyID, homedir string) (sign.Signer, error) {
	return sign.NewGPGSigner(context.Background(), keyID, homedir)
}

// signSummary returns summary.sig contents for data, or nil when no key is
// given.
func signSummary(data []byte, signType string, keys, gpgKeys []string, gpgHome string) (objects.Metadata, error) {
	ss, err := signers(signType, keys, gpgKeys, gpgHome)
	if err != nil || len(ss) == 0 {
		return nil, err
	}
	md := objects.Metadata{}
	for _, s := range ss {
		sig, err := s.Sign(context.Background(), data)
		if err != nil {
			return nil, fmt.Errorf("sign summary: %w", err)
		}
		if md, err = sign.Append(md, s.MetaKey(), sig); err != nil {
			return nil, err
		}
	}
	return md, nil
}

// signNewCommit signs a commit written in transaction t before t publishes
// it, so that the commit never appears unsigned.
func signNewCommit(ctx context.Context, t *repo.Txn, c objects.Checksum, signType string, keys, gpgKeys []string, gpgHome string) error {
	ss, err := signers(signType, keys, gpgKeys, gpgHome)
	if err != nil || len(ss) == 0 {
		return err
	}
	data, err := t.ReadStagedMetadata(objects.KindCommit, c)
	if err != nil {
		return err
	}
	md, err := t.Repo().ReadCommitMeta(c)
	if err != nil {
		return err
	}
	for _, s := range ss {
		sig, err := s.Sign(ctx, data)
		if err != nil {
			return fmt.Errorf("sign commit %s: %w", c, err)
		}
		if md, err = sign.Append(md, s.MetaKey(), sig); err != nil {
			return err
		}
	}
	return t.WriteCommitMeta(c, md)
}
