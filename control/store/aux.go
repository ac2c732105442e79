package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// auxRoot is the key prefix of aux records, below the store prefix.
func (s *Store) auxRoot() string { return s.prefix + "aux/" }

// auxKey returns the etcd key of an aux record.
func (s *Store) auxKey(key string) (string, error) {
	if key == "" {
		return "", fmt.Errorf("aux record: key is empty")
	}
	return s.auxRoot() + key, nil
}

// leaseSeconds turns a TTL into etcd's whole seconds, rounding up.
func leaseSeconds(ttl time.Duration) int64 {
	sec := int64((ttl + time.Second - 1) / time.Second)
	return max(sec, 1)
}

// putOptions grants a lease for ttl (when not 0) and returns the put option
// attaching it, and the lease to revoke if the put does not happen.
func (s *Store) putOptions(ctx context.Context, ttl time.Duration) ([]clientv3.OpOption, clientv3.LeaseID, error) {
	if ttl <= 0 {
		return nil, clientv3.NoLease, nil
	}
	lease, err := s.cli.Grant(ctx, leaseSeconds(ttl))
	if err != nil {
		return nil, clientv3.NoLease, fmt.Errorf("grant lease of %s: %w", ttl, err)
	}
	return []clientv3.OpOption{clientv3.WithLease(lease.ID)}, lease.ID, nil
}

// revokeQuietly revokes an unused lease; a failure only delays its expiry,
// so it is not reported.
func (s *Store) revokeQuietly(ctx context.Context, id clientv3.LeaseID) {
	if id == clientv3.NoLease {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_, _ = s.cli.Revoke(rctx, id)
}

// PutAux stores v as JSON under the aux key, replacing any value. With a
// ttl above 0 the record disappears after it (rounded up to whole seconds,
// and to etcd's minimum lease TTL) unless written again.
func (s *Store) PutAux(ctx context.Context, key string, v any, ttl time.Duration) error {
	k, err := s.auxKey(key)
	if err != nil {
		return err
	}
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("put aux record %q: encode: %w", key, err)
	}
	opts, lease, err := s.putOptions(ctx, ttl)
	if err != nil {
		return fmt.Errorf("put aux record %q: %w", key, err)
	}
	if _, err := s.cli.Put(ctx, k, string(data), opts...); err != nil {
		s.revokeQuietly(ctx, lease)
		return fmt.Errorf("put aux record %q: %w", key, err)
	}
	return nil
}

// GetAux reads the aux record into v (as json.Unmarshal does) and reports
// whether it exists; v is untouched when it does not.
func (s *Store) GetAux(ctx context.Context, key string, v any) (found bool, err error) {
	k, err := s.auxKey(key)
	if err != nil {
		return false, err
	}
	resp, err := s.cli.Get(ctx, k)
	if err != nil {
		return false, fmt.Errorf("get aux record %q: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return false, nil
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, v); err != nil {
		return true, fmt.Errorf("get aux record %q: decode: %w", key, err)
	}
	return true, nil
}

// CreateAux stores v under the aux key only if no record is there, and
// reports whether it did: of several concurrent creators exactly one wins.
// ttl is as for PutAux.
func (s *Store) CreateAux(ctx context.Context, key string, v any, ttl time.Duration) (created bool, err error) {
	k, err := s.auxKey(key)
	if err != nil {
		return false, err
	}
	data, err := json.Marshal(v)
	if err != nil {
		return false, fmt.Errorf("create aux record %q: encode: %w", key, err)
	}
	opts, lease, err := s.putOptions(ctx, ttl)
	if err != nil {
		return false, fmt.Errorf("create aux record %q: %w", key, err)
	}
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, string(data), opts...)).
		Commit()
	if err != nil {
		s.revokeQuietly(ctx, lease)
		return false, fmt.Errorf("create aux record %q: %w", key, err)
	}
	if !resp.Succeeded {
		s.revokeQuietly(ctx, lease)
	}
	return resp.Succeeded, nil
}

// ConsumeAux reads the aux record into v and deletes it in one atomic
// step, reporting whether it existed: of several concurrent consumers of a
// single-use record (a join token) exactly one gets it.
func (s *Store) ConsumeAux(ctx context.Context, key string, v any) (found bool, err error) {
	k, err := s.auxKey(key)
	if err != nil {
		return false, err
	}
	resp, err := s.cli.Delete(ctx, k, clientv3.WithPrevKV())
	if err != nil {
		return false, fmt.Errorf("consume aux record %q: %w", key, err)
	}
	if resp.Deleted == 0 || len(resp.PrevKvs) == 0 {
		return false, nil
	}
	if err := json.Unmarshal(resp.PrevKvs[0].Value, v); err != nil {
		return true, fmt.Errorf("consume aux record %q: decode: %w", key, err)
	}
	return true, nil
}

// DeleteAux removes the aux record; removing an absent one is not an
// error.
func (s *Store) DeleteAux(ctx context.Context, key string) error {
	k, err := s.auxKey(key)
	if err != nil {
		return err
	}
	if _, err := s.cli.Delete(ctx, k); err != nil {
		return fmt.Errorf("delete aux record %q: %w", key, err)
	}
	return nil
}

// ListAux returns every aux record whose key starts with prefix, keyed by
// its full aux key (relative to the aux root, so it can be passed back to
// GetAux).
func (s *Store) ListAux(ctx context.Context, prefix string) (map[string]json.RawMessage, error) {
	root := s.auxRoot()
	resp, err := s.cli.Get(ctx, root+prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list aux records %q: %w", prefix, err)
	}
	out := make(map[string]json.RawMessage, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		out[strings.TrimPrefix(string(kv.Key), root)] = json.RawMessage(kv.Value)
	}
	return out, nil
}

// AuxEvent is one change of an aux record.
type AuxEvent struct {
	// Key is the record's key relative to the aux root.
	Key string
	// Value is the new JSON value; nil when Deleted.
	Value json.RawMessage
	// Deleted is true when the record was deleted or its lease expired.
	Deleted bool
	// Revision is the etcd revision of the change.
	Revision int64
}

// WatchAux streams changes to aux records whose key starts with prefix,
// from the moment of the call until ctx ends. The channel also closes when
// the etcd stream breaks: a caller that still wants changes lists again
// and watches again.
func (s *Store) WatchAux(ctx context.Context, prefix string) (<-chan AuxEvent, error) {
	rev, err := s.Revision(ctx)
	if err != nil {
		return nil, fmt.Errorf("watch aux records %q: %w", prefix, err)
	}
	root := s.auxRoot()
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	wch := s.cli.Watch(wctx, root+prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	out := make(chan AuxEvent, watchBuffer)
	go func() {
		defer close(out)
		defer cancel()
		for resp := range wch {
			if resp.Err() != nil || resp.Canceled {
				return
			}
			for _, ev := range resp.Events {
				e := AuxEvent{
					Key:      strings.TrimPrefix(string(ev.Kv.Key), root),
					Revision: ev.Kv.ModRevision,
					Deleted:  ev.Type == mvccpb.DELETE,
				}
				if !e.Deleted {
					e.Value = json.RawMessage(ev.Kv.Value)
				}
				select {
				case out <- e:
				case <-wctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

// KeepAux publishes v under the aux key with a lease of ttl and keeps the
// lease alive in the background until ctx ends, then revokes it, which
// removes the record: a control-plane instance announcing its endpoint for
// as long as it runs. It returns once the record is first written (an
// error if that fails). Should the lease be lost meanwhile (etcd
// unreachable for longer than ttl), the record is written again as soon as
// etcd answers.
func (s *Store) KeepAux(ctx context.Context, key string, v any, ttl time.Duration) error {
	k, err := s.auxKey(key)
	if err != nil {
		return err
	}
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("keep aux record %q: encode: %w", key, err)
	}
	publish := func() (clientv3.LeaseID, <-chan *clientv3.LeaseKeepAliveResponse, error) {
		rctx, cancel := context.WithTimeout(ctx, ttl+5*time.Second)
		defer cancel()
		lease, err := s.cli.Grant(rctx, leaseSeconds(ttl))
		if err != nil {
			return clientv3.NoLease, nil, fmt.Errorf("keep aux record %q: grant lease: %w", key, err)
		}
		if _, err := s.cli.Put(rctx, k, string(data), clientv3.WithLease(lease.ID)); err != nil {
			s.revokeQuietly(ctx, lease.ID)
			return clientv3.NoLease, nil, fmt.Errorf("keep aux record %q: %w", key, err)
		}
		ka, err := s.cli.KeepAlive(ctx, lease.ID)
		if err != nil {
			s.revokeQuietly(ctx, lease.ID)
			return clientv3.NoLease, nil, fmt.Errorf("keep aux record %q: keep lease alive: %w", key, err)
		}
		return lease.ID, ka, nil
	}
	id, ka, err := publish()
	if err != nil {
		return err
	}
	go func() {
		retry := time.Second
		for {
			for range ka {
				// Drain the keep-alive acknowledgements; the channel closes
				// when ctx ends or the lease is lost.
			}
			if ctx.Err() != nil {
				s.revokeQuietly(ctx, id)
				return
			}
			s.revokeQuietly(ctx, id)
			for {
				var err error
				if id, ka, err = publish(); err == nil {
					retry = time.Second
					break
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(retry):
				}
				retry = min(2*retry, max(ttl, time.Second))
			}
		}
	}()
	return nil
}
