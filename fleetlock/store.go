package fleetlock

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/strata-os/strata/errdefs"
)

// Store keeps the semaphores. Get returns a group's semaphore and a
// revision, or (nil, 0, nil) when the group has none yet; Put stores sem
// only if the semaphore's revision is still rev (0: only if absent) and
// reports whether it did. Implementations MUST make Put atomic with that
// comparison: it is what lets several servers share one store.
type Store interface {
	Get(ctx context.Context, group string) (sem *Semaphore, rev int64, err error)
	Put(ctx context.Context, group string, sem *Semaphore, rev int64) (bool, error)
	// List returns every group's semaphore.
	List(ctx context.Context) (map[string]*Semaphore, error)
}

// Etcd is a Store on etcd v3, at airlock's keys (Key) with airlock's
// JSON, compared on the key's mod revision.
type Etcd struct {
	c *clientv3.Client
}

// KeyPrefix is the prefix of every group's key.
const KeyPrefix = "com.coreos.airlock/groups/"

// DialEtcd connects to the etcd endpoints (http://HOST:PORT URLs).
func DialEtcd(ctx context.Context, endpoints []string) (*Etcd, error) {
	if len(endpoints) == 0 {
		return nil, fmt.Errorf("%w: no etcd endpoint", errdefs.ErrInvalid)
	}
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
		Context:     ctx,
	})
	if err != nil {
		return nil, fmt.Errorf("etcd %s: %w", strings.Join(endpoints, ","), err)
	}
	return &Etcd{c: c}, nil
}

// Close closes the connection.
func (e *Etcd) Close() error { return e.c.Close() }

// Client is the underlying etcd client (tests read raw keys with it).
func (e *Etcd) Client() *clientv3.Client { return e.c }

func (e *Etcd) Get(ctx context.Context, group string) (*Semaphore, int64, error) {
	resp, err := e.c.Get(ctx, Key(group))
	if err != nil {
		return nil, 0, fmt.Errorf("etcd get %s: %w", Key(group), err)
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, nil
	}
	kv := resp.Kvs[0]
	sem, err := ParseSemaphore(kv.Value)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: etcd key %s: %v", errdefs.ErrCorrupt, Key(group), err)
	}
	return sem, kv.ModRevision, nil
}

func (e *Etcd) Put(ctx context.Context, group string, sem *Semaphore, rev int64) (bool, error) {
	k := Key(group)
	resp, err := e.c.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(k), "=", rev)).
		Then(clientv3.OpPut(k, string(sem.Marshal()))).
		Commit()
	if err != nil {
		return false, fmt.Errorf("etcd txn %s: %w", k, err)
	}
	return resp.Succeeded, nil
}

func (e *Etcd) List(ctx context.Context) (map[string]*Semaphore, error) {
	resp, err := e.c.Get(ctx, KeyPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("etcd get %s*: %w", KeyPrefix, err)
	}
	out := map[string]*Semaphore{}
	for _, kv := range resp.Kvs {
		rest, ok := strings.CutPrefix(string(kv.Key), KeyPrefix)
		if !ok || !strings.HasSuffix(rest, "/v1/semaphore") {
			continue
		}
		g, err := url.QueryUnescape(strings.TrimSuffix(rest, "/v1/semaphore"))
		if err != nil {
			continue
		}
		sem, err := ParseSemaphore(kv.Value)
		if err != nil {
			return nil, fmt.Errorf("%w: etcd key %s: %v", errdefs.ErrCorrupt, kv.Key, err)
		}
		out[g] = sem
	}
	return out, nil
}

// errConflict is what a change returns when its retries all lost the
// compare-and-swap to other writers.
var errConflict = errors.New("conflict on semaphore detected, aborting")
