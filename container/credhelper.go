package container

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/strata-os/strata/errdefs"
)

// CredentialHelperTimeout bounds one run of a credential helper
// (docker-credential-NAME get): a helper that waits for a keyring to be
// unlocked must not hang a pull forever.
const CredentialHelperTimeout = 30 * time.Second

// helperTimeout is CredentialHelperTimeout; tests shorten it.
var helperTimeout = CredentialHelperTimeout

// maxHelperAnswer caps what is read of a helper's standard output (its
// JSON answer, or its error message).
const maxHelperAnswer = 64 << 10

// helperNotFound is the message Docker's credential helpers print (exit
// status non-zero) when they hold nothing for a server.
const helperNotFound = "credentials not found in native keychain"

// validHelperName says whether s may follow "docker-credential-": a bare
// name found on PATH, never a path.
func validHelperName(s string) bool {
	if s == "" || s == "." || s == ".." {
		return false
	}
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// helperServer is the server name a helper is asked about: the registry's
// host[:port] as containers/image passes it (docker.io for Docker Hub).
func helperServer(host string) string {
	if host == name.DefaultRegistry {
		return "docker.io"
	}
	return host
}

// limitedBuffer keeps at most max bytes and remembers that more came.
type limitedBuffer struct {
	buf  bytes.Buffer
	max  int
	over bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); len(p) > room {
		b.over = true
		if room > 0 {
			b.buf.Write(p[:room])
		}
		return len(p), nil // keep draining: the helper must not block on a full pipe
	}
	return b.buf.Write(p)
}

// runCredentialHelper runs docker-credential-NAME get for host, as the
// credHelpers entry of file asks. found is false when the helper holds
// nothing for host (its "credentials not found" answer, or an empty
// username and secret as Debian 12's docker-credential-pass answers).
// The helper inherits strata's environment (GNUPGHOME,
// PASSWORD_STORE_DIR, DBUS_SESSION_BUS_ADDRESS...). Errors are one line
// naming the helper and the registry; the answer is never quoted in them
// unless the helper failed (then its stdout is its error message).
func runCredentialHelper(ctx context.Context, helper, host, file string) (cfg authn.AuthConfig, found bool, err error) {
	bin := "docker-credential-" + helper
	fail := func(format string, a ...any) (authn.AuthConfig, bool, error) {
		return authn.AuthConfig{}, false, fmt.Errorf("credential helper %s for registry %s (credHelpers in %s): "+format, append([]any{bin, host, file}, a...)...)
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return fail("%w on PATH", errdefs.ErrNotFound)
	}
	ctx, cancel := context.WithTimeout(ctx, helperTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "get")
	cmd.Stdin = strings.NewReader(helperServer(host))
	out := &limitedBuffer{max: maxHelperAnswer}
	cmd.Stdout = out
	// A helper's children (gpg-agent) may keep the pipe open: do not wait
	// for them once the helper itself has exited.
	cmd.WaitDelay = 2 * time.Second
	runErr := cmd.Run()
	if ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fail("no answer within %s", helperTimeout)
		}
		return fail("%w", ctx.Err())
	}
	var ee *exec.ExitError
	if errors.As(runErr, &ee) {
		msg := strings.TrimSpace(out.buf.String())
		if msg == helperNotFound {
			return authn.AuthConfig{}, false, nil
		}
		if i := strings.IndexAny(msg, "\r\n"); i >= 0 {
			msg = msg[:i]
		}
		if len(msg) > 200 {
			msg = msg[:200] + "..."
		}
		if msg == "" {
			return fail("%s", ee.ProcessState)
		}
		return fail("%s: %q", ee.ProcessState, msg)
	}
	if runErr != nil {
		return fail("%w", runErr)
	}
	if out.over {
		return fail("%w: an answer over %d bytes", errdefs.ErrInvalid, maxHelperAnswer)
	}
	var ans struct {
		ServerURL string
		Username  string
		Secret    string
	}
	if err := json.Unmarshal(out.buf.Bytes(), &ans); err != nil {
		// The answer is not quoted: it may hold the secret.
		return fail("%w: its answer is not JSON of ServerURL, Username and Secret", errdefs.ErrInvalid)
	}
	switch {
	case ans.Username == "" && ans.Secret == "":
		return authn.AuthConfig{}, false, nil
	case ans.Username == "<token>":
		// An identity token: the registry's OAuth2 refresh token.
		return authn.AuthConfig{IdentityToken: ans.Secret}, true, nil
	default:
		return authn.AuthConfig{Username: ans.Username, Password: ans.Secret}, true, nil
	}
}
