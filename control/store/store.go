package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/berth-io/berth/control/api"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// DefaultPrefix is the etcd key prefix used when Options.Prefix is empty.
const DefaultPrefix = "/berth/"

// maxUpdateAttempts bounds GuaranteedUpdate's retries under contention.
const maxUpdateAttempts = 16

// maxNameAttempts bounds the retries of a generated name that collided.
const maxNameAttempts = 8

// Options configure a Store.
type Options struct {
	// Prefix is prepended to every key, so several clusters (or tests) can
	// share one etcd. Default DefaultPrefix ("/berth/"); a missing trailing
	// slash is added.
	Prefix string
	// Now is the clock for creationTimestamp; default time.Now. Tests set
	// it to get stable timestamps.
	Now func() time.Time
}

// Store is a typed view of berth's objects in etcd. It is safe for
// concurrent use.
type Store struct {
	cli    *clientv3.Client
	prefix string
	now    func() time.Time
}

// New returns a Store that reads and writes through cli. The caller keeps
// ownership of cli and closes it after the last use of the Store.
func New(cli *clientv3.Client, opts Options) *Store {
	p := opts.Prefix
	if p == "" {
		p = DefaultPrefix
	}
	if !strings.HasSuffix(p, "/") {
		p += "/"
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Store{cli: cli, prefix: p, now: now}
}

// Client exposes the etcd client for membership changes and snapshots,
// which are not object operations.
func (s *Store) Client() *clientv3.Client { return s.cli }

// Revision returns etcd's current revision: a List or Watch from it sees
// exactly what happens afterwards.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	resp, err := s.cli.Get(ctx, s.prefix+"registry/", clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("read etcd revision: %w", err)
	}
	return resp.Header.Revision, nil
}

// kindPrefix is the key prefix of every object of a kind (in a namespace,
// when ns is not empty and the kind is namespaced).
func (s *Store) kindPrefix(ki api.KindInfo, ns string) string {
	p := s.prefix + "registry/" + ki.Resource + "/"
	if ki.Namespaced && ns != "" {
		p += ns + "/"
	}
	return p
}

// objectKey checks that obj names one object of its kind and returns its
// key.
func (s *Store) objectKey(ki api.KindInfo, obj api.Object) (string, error) {
	m := obj.GetMeta()
	if err := checkNames(ki, m, m.Name); err != nil {
		return "", err
	}
	return s.kindPrefix(ki, m.Namespace) + m.Name, nil
}

// checkNames checks the namespace against the kind's scope and the name
// (or name prefix) for characters that would break the key layout.
func checkNames(ki api.KindInfo, m *api.ObjectMeta, name string) error {
	var errs api.FieldErrors
	switch {
	case ki.Namespaced && m.Namespace == "":
		errs.Add("metadata.namespace", "is required for %s", ki.Kind)
	case !ki.Namespaced && m.Namespace != "":
		errs.Add("metadata.namespace", "must be empty: %s is not namespaced, got %q", ki.Kind, m.Namespace)
	case strings.Contains(m.Namespace, "/"):
		errs.Add("metadata.namespace", "must not contain '/', got %q", m.Namespace)
	}
	switch {
	case name == "":
		errs.Add("metadata.name", "is required")
	case strings.Contains(name, "/"):
		errs.Add("metadata.name", "must not contain '/', got %q", name)
	}
	if len(errs) > 0 {
		return api.NewInvalid(ki.Kind, displayKey(m.Namespace, name), errs)
	}
	return nil
}

// displayKey is api.Key for a name not yet set on the object.
func displayKey(ns, name string) string {
	if ns == "" {
		return name
	}
	return ns + "/" + name
}

// encode returns the stored form of obj: JSON with TypeMeta filled and no
// resourceVersion.
func encode(obj api.Object) ([]byte, error) {
	api.SetTypeMeta(obj)
	m := obj.GetMeta()
	rv := m.ResourceVersion
	m.ResourceVersion = 0
	data, err := json.Marshal(obj)
	m.ResourceVersion = rv
	if err != nil {
		return nil, fmt.Errorf("encode %s %q: %w", obj.GetTypeMeta().Kind, api.Key(obj), err)
	}
	return data, nil
}

// decodeInto replaces everything in obj with the stored value and sets its
// resourceVersion.
func decodeInto(obj api.Object, data []byte, rev int64) error {
	v := reflect.ValueOf(obj).Elem()
	v.SetZero()
	if err := json.Unmarshal(data, obj); err != nil {
		return fmt.Errorf("decode stored %s: %w", api.KindOf(obj).Kind, err)
	}
	api.SetTypeMeta(obj)
	obj.GetMeta().ResourceVersion = rev
	return nil
}

// shallowCopy returns a new object of obj's type holding the same field
// values; maps and slices are shared, so callers change only scalar fields
// or whole fields of the copy.
func shallowCopy(obj api.Object) api.Object {
	v := reflect.ValueOf(obj).Elem()
	c := reflect.New(v.Type())
	c.Elem().Set(v)
	return c.Interface().(api.Object)
}

// assign makes dst (a pointer to an object) hold src's values.
func assign(dst, src api.Object) {
	reflect.ValueOf(dst).Elem().Set(reflect.ValueOf(src).Elem())
}

// statusField returns the Status field of obj, or an invalid value when
// the type has none.
func statusField(obj api.Object) reflect.Value {
	return reflect.ValueOf(obj).Elem().FieldByName("Status")
}

// newUID returns a random RFC 4122 version 4 UUID.
func newUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// nameAlphabet is what generated name suffixes are made of.
const nameAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// randomSuffix returns n random characters of nameAlphabet.
func randomSuffix(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		// 252 is the largest multiple of 36 below 256; the tiny bias of a
		// plain modulo does not matter for names, but rejection is cheap.
		for b[i] >= 252 {
			var one [1]byte
			_, _ = rand.Read(one[:])
			b[i] = one[0]
		}
		b[i] = nameAlphabet[int(b[i])%len(nameAlphabet)]
	}
	return string(b)
}

// Create stores a new object. Its kind comes from its Go type. Namespaced
// kinds need metadata.namespace and cluster-scoped ones must leave it empty
// (an Invalid error otherwise). An empty name with metadata.generateName
// gets generateName plus five random characters, retried on collision.
// Create sets uid, creationTimestamp (now, UTC, whole seconds), generation 1
// and resourceVersion; a deletionTimestamp the caller set is kept. It fails
// with AlreadyExists when the object exists. On success obj holds the
// stored object; on failure obj is unchanged.
func (s *Store) Create(ctx context.Context, obj api.Object) error {
	ki := api.KindOf(obj)
	m := obj.GetMeta()
	generated := m.Name == "" && m.GenerateName != ""
	attempts := 1
	if generated {
		attempts = maxNameAttempts
	}
	for range attempts {
		next := shallowCopy(obj)
		nm := next.GetMeta()
		if generated {
			nm.Name = nm.GenerateName + randomSuffix(5)
		}
		key, err := s.objectKey(ki, next)
		if err != nil {
			return err
		}
		nm.UID = newUID()
		nm.CreationTimestamp = s.now().UTC().Truncate(time.Second)
		nm.Generation = 1
		nm.ResourceVersion = 0
		data, err := encode(next)
		if err != nil {
			return err
		}
		resp, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, string(data))).
			Commit()
		if err != nil {
			return fmt.Errorf("create %s %q: %w", ki.Kind, api.Key(next), err)
		}
		if !resp.Succeeded {
			if generated {
				continue
			}
			return api.NewAlreadyExists(ki.Kind, api.Key(next))
		}
		nm.ResourceVersion = resp.Header.Revision
		assign(obj, next)
		return nil
	}
	return api.NewError(api.ReasonAlreadyExists,
		"%s: %d generated names with prefix %q were all taken: use a longer or different generateName",
		ki.Kind, maxNameAttempts, m.GenerateName)
}

// Get reads the object named by obj's kind, namespace and name into obj,
// replacing everything obj held. It fails with NotFound when it is absent.
func (s *Store) Get(ctx context.Context, obj api.Object) error {
	ki := api.KindOf(obj)
	key, err := s.objectKey(ki, obj)
	if err != nil {
		return err
	}
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("get %s %q: %w", ki.Kind, api.Key(obj), err)
	}
	if len(resp.Kvs) == 0 {
		return api.NewNotFound(ki.Kind, api.Key(obj))
	}
	kv := resp.Kvs[0]
	return decodeInto(obj, kv.Value, kv.ModRevision)
}

// updateMode says which parts of the caller's object an update writes.
type updateMode int

const (
	// modeSpec writes everything but status and server-owned metadata.
	modeSpec updateMode = iota
	// modeStatus writes only status.
	modeStatus
	// modeMeta is modeSpec plus the deletion fields of metadata.
	modeMeta
)

func (m updateMode) verb() string {
	switch m {
	case modeStatus:
		return "update status of"
	case modeMeta:
		return "update metadata of"
	}
	return "update"
}

// Update writes obj's spec and metadata, compare-and-swapping on
// metadata.resourceVersion: it must be set (a BadRequest error otherwise),
// and a stale one fails with Conflict. The stored status (for kinds with a
// status) and the server-owned metadata (uid, creationTimestamp,
// generation, deletionTimestamp, deletionGracePeriodSeconds) are kept.
// Generation goes up by one when anything outside metadata and status
// changed. An update that changes nothing is not written and keeps its
// resourceVersion. It fails with NotFound when the object is absent. On
// success obj holds the stored result; on failure obj is unchanged.
func (s *Store) Update(ctx context.Context, obj api.Object) error {
	return s.update(ctx, obj, modeSpec)
}

// UpdateStatus writes only obj's status; everything else is taken from the
// stored copy and generation does not change. It compare-and-swaps on
// resourceVersion like Update. Kinds without a status get a BadRequest
// error.
func (s *Store) UpdateStatus(ctx context.Context, obj api.Object) error {
	return s.update(ctx, obj, modeStatus)
}

// UpdateMeta is Update that also writes the server-owned
// deletionTimestamp and deletionGracePeriodSeconds: the server uses it to
// begin a graceful deletion. Generation changes only when the spec does.
func (s *Store) UpdateMeta(ctx context.Context, obj api.Object) error {
	return s.update(ctx, obj, modeMeta)
}

func (s *Store) update(ctx context.Context, obj api.Object, mode updateMode) error {
	ki := api.KindOf(obj)
	key, err := s.objectKey(ki, obj)
	if err != nil {
		return err
	}
	okey := api.Key(obj)
	rv := obj.GetMeta().ResourceVersion
	if rv <= 0 {
		return api.NewError(api.ReasonBadRequest,
			"%s %s %q: metadata.resourceVersion is required for update: read the object and send back its resourceVersion",
			mode.verb(), ki.Kind, okey)
	}
	if mode == modeStatus && !ki.HasStatus {
		return api.NewError(api.ReasonBadRequest, "%s %s %q: %s has no status", mode.verb(), ki.Kind, okey, ki.Kind)
	}
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("%s %s %q: read current: %w", mode.verb(), ki.Kind, okey, err)
	}
	if len(resp.Kvs) == 0 {
		return api.NewNotFound(ki.Kind, okey)
	}
	kv := resp.Kvs[0]
	if kv.ModRevision != rv {
		return api.NewConflict(ki.Kind, okey, rv, kv.ModRevision)
	}
	stored := ki.New()
	if err := decodeInto(stored, kv.Value, kv.ModRevision); err != nil {
		return err
	}
	next, err := merge(ki, stored, obj, mode)
	if err != nil {
		return fmt.Errorf("%s %s %q: %w", mode.verb(), ki.Kind, okey, err)
	}
	data, err := encode(next)
	if err != nil {
		return err
	}
	if bytes.Equal(data, kv.Value) {
		next.GetMeta().ResourceVersion = kv.ModRevision
		assign(obj, next)
		return nil
	}
	txn, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", rv)).
		Then(clientv3.OpPut(key, string(data))).
		Else(clientv3.OpGet(key, clientv3.WithKeysOnly())).
		Commit()
	if err != nil {
		return fmt.Errorf("%s %s %q: %w", mode.verb(), ki.Kind, okey, err)
	}
	if !txn.Succeeded {
		got := txn.Responses[0].GetResponseRange()
		if got == nil || len(got.Kvs) == 0 {
			return api.NewNotFound(ki.Kind, okey)
		}
		return api.NewConflict(ki.Kind, okey, rv, got.Kvs[0].ModRevision)
	}
	next.GetMeta().ResourceVersion = txn.Header.Revision
	assign(obj, next)
	return nil
}

// merge builds the object an update stores from the stored copy and the
// caller's object.
func merge(ki api.KindInfo, stored, in api.Object, mode updateMode) (api.Object, error) {
	if mode == modeStatus {
		next := shallowCopy(stored)
		statusField(next).Set(statusField(in))
		return next, nil
	}
	next := shallowCopy(in)
	nm, sm := next.GetMeta(), stored.GetMeta()
	nm.UID = sm.UID
	nm.CreationTimestamp = sm.CreationTimestamp
	nm.Generation = sm.Generation
	nm.GenerateName = sm.GenerateName
	if mode != modeMeta {
		nm.DeletionTimestamp = sm.DeletionTimestamp
		nm.DeletionGracePeriodSeconds = sm.DeletionGracePeriodSeconds
	}
	if ki.HasStatus {
		if f := statusField(next); f.IsValid() {
			f.Set(statusField(stored))
		}
	}
	changed, err := specChanged(stored, next)
	if err != nil {
		return nil, err
	}
	if changed {
		nm.Generation = sm.Generation + 1
	}
	return next, nil
}

// specChanged compares everything outside metadata and status of two
// objects of one kind, in canonical JSON (so a nil and an empty slice are
// the same, as they are on the wire).
func specChanged(a, b api.Object) (bool, error) {
	sa, err := specJSON(a)
	if err != nil {
		return false, err
	}
	sb, err := specJSON(b)
	if err != nil {
		return false, err
	}
	if len(sa) != len(sb) {
		return true, nil
	}
	for k, va := range sa {
		if vb, ok := sb[k]; !ok || !bytes.Equal(va, vb) {
			return true, nil
		}
	}
	return false, nil
}

func specJSON(obj api.Object) (map[string]json.RawMessage, error) {
	data, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encode for comparison: %w", err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return nil, fmt.Errorf("decode for comparison: %w", err)
	}
	for _, k := range []string{"kind", "apiVersion", "metadata", "status"} {
		delete(fields, k)
	}
	return fields, nil
}

// DeleteOptions are preconditions of a delete.
type DeleteOptions struct {
	// ResourceVersion, when not 0, must equal the stored one.
	ResourceVersion int64
	// UID, when not empty, must equal the stored one, so a delete meant
	// for an object does not remove a newer one of the same name.
	UID string
}

// Delete removes the object named by obj (kind, namespace and name). A
// precondition that does not hold fails it with Conflict; an absent object
// with NotFound. On success obj holds the last stored value with
// resourceVersion set to the revision of the deletion.
func (s *Store) Delete(ctx context.Context, obj api.Object, opts DeleteOptions) error {
	ki := api.KindOf(obj)
	key, err := s.objectKey(ki, obj)
	if err != nil {
		return err
	}
	okey := api.Key(obj)
	for range maxUpdateAttempts {
		resp, err := s.cli.Get(ctx, key)
		if err != nil {
			return fmt.Errorf("delete %s %q: read current: %w", ki.Kind, okey, err)
		}
		if len(resp.Kvs) == 0 {
			return api.NewNotFound(ki.Kind, okey)
		}
		kv := resp.Kvs[0]
		last := ki.New()
		if err := decodeInto(last, kv.Value, kv.ModRevision); err != nil {
			return err
		}
		if opts.ResourceVersion != 0 && opts.ResourceVersion != kv.ModRevision {
			return api.NewConflict(ki.Kind, okey, opts.ResourceVersion, kv.ModRevision)
		}
		if opts.UID != "" && opts.UID != last.GetMeta().UID {
			return api.NewError(api.ReasonConflict,
				"%s %q: precondition failed: the delete is for uid %s but the stored object has uid %s (it was re-created)",
				ki.Kind, okey, opts.UID, last.GetMeta().UID)
		}
		txn, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)).
			Then(clientv3.OpDelete(key)).
			Commit()
		if err != nil {
			return fmt.Errorf("delete %s %q: %w", ki.Kind, okey, err)
		}
		if !txn.Succeeded {
			// Changed between the read and the delete: check the
			// preconditions against the new value.
			continue
		}
		last.GetMeta().ResourceVersion = txn.Header.Revision
		assign(obj, last)
		return nil
	}
	return api.NewError(api.ReasonConflict, "delete %s %q: the object kept changing over %d attempts: retry", ki.Kind, okey, maxUpdateAttempts)
}

// GuaranteedUpdate is the read-modify-write loop: it reads obj (named by
// its kind, namespace and name) into obj, calls mutate (which changes obj
// in place), and writes it with UpdateStatus when status is true or Update
// otherwise, starting again on a Conflict, at most 16 times. An error from
// mutate stops it and is returned as is, so mutate can also decide that
// nothing needs writing by returning a sentinel of its own.
func (s *Store) GuaranteedUpdate(ctx context.Context, obj api.Object, status bool, mutate func() error) error {
	var last error
	for range maxUpdateAttempts {
		if err := s.Get(ctx, obj); err != nil {
			return err
		}
		if err := mutate(); err != nil {
			return err
		}
		var err error
		if status {
			err = s.UpdateStatus(ctx, obj)
		} else {
			err = s.Update(ctx, obj)
		}
		if !api.IsConflict(err) {
			return err
		}
		last = err
		if ctx.Err() != nil {
			return fmt.Errorf("update %s %q: %w", api.KindOf(obj).Kind, api.Key(obj), ctx.Err())
		}
	}
	return fmt.Errorf("update %s %q: still conflicting after %d attempts: %w",
		api.KindOf(obj).Kind, api.Key(obj), maxUpdateAttempts, last)
}
