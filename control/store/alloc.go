package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/berth-io/berth/control/api"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// ErrExhausted is wrapped by Allocate's error when every candidate of a
// pool is taken, so callers can tell a full pool from a failed request.
var ErrExhausted = errors.New("allocation pool exhausted")

// poolPrefix returns the key prefix of a pool's reservations.
func (s *Store) poolPrefix(pool string) (string, error) {
	if pool == "" || strings.Contains(pool, "/") {
		return "", fmt.Errorf("allocation pool name %q: must be non-empty and free of '/'", pool)
	}
	return s.prefix + "alloc/" + pool + "/", nil
}

// poolKey returns the key reserving value in pool. Values are escaped, so
// a CIDR such as 10.244.1.0/24 is one key segment.
func (s *Store) poolKey(pool, value string) (string, error) {
	p, err := s.poolPrefix(pool)
	if err != nil {
		return "", err
	}
	if value == "" {
		return "", fmt.Errorf("allocation pool %q: value is empty", pool)
	}
	return p + url.PathEscape(value), nil
}

// Reserve reserves value in pool for owner. Reserving a value the same
// owner already holds succeeds (so a retried request is harmless); one
// held by another owner fails with AlreadyExists naming that owner.
func (s *Store) Reserve(ctx context.Context, pool, value, owner string) error {
	_, err := s.reserve(ctx, pool, value, owner)
	return err
}

// reserve reserves value and reports the owner holding it when that is
// someone else ("" when the reservation is owner's).
func (s *Store) reserve(ctx context.Context, pool, value, owner string) (holder string, err error) {
	key, err := s.poolKey(pool, value)
	if err != nil {
		return "", err
	}
	// A value released between the compare and the read of the holder
	// is retried; a handful of attempts covers any real churn.
	for range 4 {
		resp, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, owner)).
			Else(clientv3.OpGet(key)).
			Commit()
		if err != nil {
			return "", fmt.Errorf("reserve %s in pool %q: %w", value, pool, err)
		}
		if resp.Succeeded {
			return "", nil
		}
		rng := resp.Responses[0].GetResponseRange()
		if rng == nil || len(rng.Kvs) == 0 {
			continue
		}
		holder = string(rng.Kvs[0].Value)
		if holder == owner {
			return "", nil
		}
		return holder, api.NewError(api.ReasonAlreadyExists,
			"%s in pool %q is already allocated to %s", value, pool, holder)
	}
	return "", api.NewError(api.ReasonConflict, "reserve %s in pool %q: the value kept changing hands: retry", value, pool)
}

// Allocate reserves the first candidate, in the order given, that is free
// (or already held by owner) and returns it. Candidates taken concurrently
// by others are skipped. When none is left the error wraps ErrExhausted.
// Allocate reads the pool once, so a pool of many thousand values costs
// one range read and one write per candidate it tries.
func (s *Store) Allocate(ctx context.Context, pool string, candidates func(yield func(string) bool), owner string) (string, error) {
	held, err := s.Reserved(ctx, pool)
	if err != nil {
		return "", err
	}
	var found string
	var failure error
	candidates(func(v string) bool {
		if h, ok := held[v]; ok && h != owner {
			return true
		}
		holder, err := s.reserve(ctx, pool, v, owner)
		switch {
		case err == nil:
			found = v
			return false
		case holder != "":
			return true
		default:
			failure = err
			return false
		}
	})
	switch {
	case failure != nil:
		return "", fmt.Errorf("allocate from pool %q: %w", pool, failure)
	case found == "":
		return "", fmt.Errorf("allocate from pool %q for %s: %w", pool, owner, ErrExhausted)
	}
	return found, nil
}

// Release frees value in pool; releasing a free value is not an error.
func (s *Store) Release(ctx context.Context, pool, value string) error {
	key, err := s.poolKey(pool, value)
	if err != nil {
		return err
	}
	if _, err := s.cli.Delete(ctx, key); err != nil {
		return fmt.Errorf("release %s in pool %q: %w", value, pool, err)
	}
	return nil
}

// Reserved returns every reserved value of pool and its owner, for
// repairing the pool against the objects that should hold its values.
func (s *Store) Reserved(ctx context.Context, pool string) (map[string]string, error) {
	p, err := s.poolPrefix(pool)
	if err != nil {
		return nil, err
	}
	resp, err := s.cli.Get(ctx, p, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("read pool %q: %w", pool, err)
	}
	out := make(map[string]string, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		v, err := url.PathUnescape(strings.TrimPrefix(string(kv.Key), p))
		if err != nil {
			return nil, fmt.Errorf("read pool %q: key %s: %w", pool, kv.Key, err)
		}
		out[v] = string(kv.Value)
	}
	return out, nil
}
