package fleetlock

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Client is a FleetLock client for one id in one group. The zero HTTP
// uses a client with a 30 s timeout. Redirects are never followed (a 3xx
// is a refusal).
type Client struct {
	// BaseURL is the service's base URL; the endpoints are appended to it.
	BaseURL string
	ID      string
	Group   string
	HTTP    *http.Client
}

// PreReboot takes a reboot slot (recursively: taking one already held
// succeeds). A refusal by the server is an *Error; a transport failure
// is any other error. Either way the caller MUST NOT reboot.
func (c *Client) PreReboot(ctx context.Context) error { return c.post(ctx, PreRebootPath) }

// SteadyState releases the slot if this id holds one.
func (c *Client) SteadyState(ctx context.Context) error { return c.post(ctx, SteadyStatePath) }

func (c *Client) post(ctx context.Context, path string) error {
	body, _ := json.Marshal(Request{ClientParams: ClientParams{ID: c.ID, Group: c.Group}})
	u := strings.TrimSuffix(c.BaseURL, "/") + path
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("fleetlock %s: %w", u, err)
	}
	req.Header.Set(ProtocolHeader, "true")
	req.Header.Set("Content-Type", "application/json")
	hc := http.Client{Timeout: 30 * time.Second}
	if c.HTTP != nil {
		hc = *c.HTTP
	}
	// A redirect is a failure, not followed: another host's 200 is not
	// a slot of this service, and the caller would reboot without one.
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("fleetlock %s: %w", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	e := &Error{Status: resp.StatusCode}
	if json.Unmarshal(bytes.TrimSpace(b), e) != nil || e.Kind == "" {
		e.Kind = KindGenericError
		e.Value = strings.TrimSpace(string(b))
	}
	return e
}
