package etcd

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Membership errors callers branch on.
var (
	// ErrMemberNotFound: no member has the given ID.
	ErrMemberNotFound = errors.New("etcd member not found")
	// ErrLearnerNotReady: the learner has not caught up with the leader, so
	// etcd will not promote it yet.
	ErrLearnerNotReady = errors.New("etcd learner not caught up with the leader")
	// ErrWouldBreakQuorum: removing the member would leave fewer healthy
	// voters than a majority of the remaining voters. The error is a
	// *QuorumError.
	ErrWouldBreakQuorum = errors.New("removal would break etcd quorum")
)

// promoteRetryInterval is how often Promote asks again while the learner
// catches up, and AddLearner and RemoveMember while etcd reports the
// cluster unhealthy.
const promoteRetryInterval = 200 * time.Millisecond

// retryUnhealthy calls op until it returns anything but etcd's "unhealthy
// cluster" answer, or ctx ends. etcd gives that answer to membership changes
// until the member has been connected to its peers for five seconds, so it
// is expected right after a previous change.
func retryUnhealthy(ctx context.Context, op func() error) error {
	tick := time.NewTicker(promoteRetryInterval)
	defer tick.Stop()
	for {
		err := op()
		if !errors.Is(err, rpctypes.ErrUnhealthy) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (etcd kept answering until the deadline): %w", err, context.Cause(ctx))
		case <-tick.C:
		}
	}
}

// Member is one etcd cluster member as the cluster sees it.
type Member struct {
	// ID identifies the member; it is stable for the member's life.
	ID uint64
	// Name is the member's name; empty until the member has started.
	Name string
	// PeerURLs and ClientURLs are what the member advertises (ClientURLs is
	// empty until it has started).
	PeerURLs   []string
	ClientURLs []string
	// IsLearner is true until the member is promoted to a voter.
	IsLearner bool
	// Started is true once the member has started and published itself.
	Started bool
}

// IDString formats the ID the way etcd's tools print it (hex).
func (m Member) IDString() string { return fmt.Sprintf("%x", m.ID) }

func memberFromPB(m *etcdserverpb.Member) Member {
	return Member{
		ID:         m.ID,
		Name:       m.Name,
		PeerURLs:   slices.Clone(m.PeerURLs),
		ClientURLs: slices.Clone(m.ClientURLs),
		IsLearner:  m.IsLearner,
		Started:    m.Name != "",
	}
}

// ListMembers lists the cluster's members (a linearizable read: it needs
// quorum).
func ListMembers(ctx context.Context, cli *clientv3.Client) ([]Member, error) {
	resp, err := cli.MemberList(ctx)
	if err != nil {
		return nil, fmt.Errorf("list etcd members: %w", err)
	}
	out := make([]Member, 0, len(resp.Members))
	for _, m := range resp.Members {
		out = append(out, memberFromPB(m))
	}
	return out, nil
}

// initialCluster formats the initial-cluster string a newly added member
// starts with: every member's peer URLs, the new member under name (as
// etcdctl does, unstarted members appear with an empty name).
func initialCluster(members []*etcdserverpb.Member, newID uint64, name string) string {
	var parts []string
	for _, m := range members {
		n := m.Name
		if m.ID == newID {
			n = name
		}
		for _, u := range m.PeerURLs {
			parts = append(parts, n+"="+u)
		}
	}
	return strings.Join(parts, ",")
}

// AddLearner adds a non-voting member called name that will be reachable on
// peerURLs, and returns it with the initial-cluster string the new member
// must start with (ClusterState ExistingCluster). If a member with exactly
// these peer URLs already exists (a re-run of the same join), that member is
// returned instead of an error. While etcd answers that the cluster is
// unhealthy (as it does for a few seconds after a membership change), it
// asks again until ctx ends.
func AddLearner(ctx context.Context, cli *clientv3.Client, name string, peerURLs []string) (Member, string, error) {
	if name == "" || len(peerURLs) == 0 {
		return Member{}, "", errors.New("add etcd learner: need a name and peer urls")
	}
	var resp *clientv3.MemberAddResponse
	err := retryUnhealthy(ctx, func() error {
		var err error
		resp, err = cli.MemberAddAsLearner(ctx, peerURLs)
		return err
	})
	if err == nil {
		return memberFromPB(resp.Member), initialCluster(resp.Members, resp.Member.ID, name), nil
	}
	if !errors.Is(err, rpctypes.ErrPeerURLExist) && !errors.Is(err, rpctypes.ErrMemberExist) {
		return Member{}, "", fmt.Errorf("add etcd learner %q at %v: %w", name, peerURLs, err)
	}
	list, lerr := cli.MemberList(ctx)
	if lerr != nil {
		return Member{}, "", fmt.Errorf("add etcd learner %q at %v: %w; list members: %w", name, peerURLs, err, lerr)
	}
	want := slices.Sorted(slices.Values(peerURLs))
	for _, m := range list.Members {
		if slices.Equal(slices.Sorted(slices.Values(m.PeerURLs)), want) {
			if m.Name != "" && m.Name != name {
				return Member{}, "", fmt.Errorf("add etcd learner %q at %v: peer urls belong to member %q (%x)", name, peerURLs, m.Name, m.ID)
			}
			return memberFromPB(m), initialCluster(list.Members, m.ID, name), nil
		}
	}
	return Member{}, "", fmt.Errorf("add etcd learner %q at %v: %w", name, peerURLs, err)
}

// Promote makes the learner id a voting member. While etcd answers that the
// learner has not caught up, it asks again until ctx ends, and then returns
// an error wrapping both ErrLearnerNotReady and the context's error.
// It returns once the member itself reports that it is a voter, so requests
// sent to it next are served. Promoting a member that is already a voter
// succeeds.
func Promote(ctx context.Context, cli *clientv3.Client, id uint64) error {
	tick := time.NewTicker(promoteRetryInterval)
	defer tick.Stop()
	for {
		_, err := cli.MemberPromote(ctx, id)
		switch {
		case err == nil, errors.Is(err, rpctypes.ErrMemberNotLearner):
			return waitVoter(ctx, cli, id)
		case errors.Is(err, rpctypes.ErrMemberNotFound):
			return fmt.Errorf("promote etcd member %x: %w", id, ErrMemberNotFound)
		case !errors.Is(err, rpctypes.ErrMemberLearnerNotReady):
			return fmt.Errorf("promote etcd member %x: %w", id, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("promote etcd member %x: gave up waiting: %w: %w", id, ErrLearnerNotReady, context.Cause(ctx))
		case <-tick.C:
		}
	}
}

// QuorumError explains a refused removal: how many voters there would be
// and how many of them are healthy now.
type QuorumError struct {
	// Member is the ID whose removal was refused.
	Member uint64
	// Voters is the number of voting members after the removal.
	Voters int
	// Healthy is how many of those answered a status request.
	Healthy int
	// Unhealthy names the voters that did not, with why.
	Unhealthy []string
}

// Error says what was refused and why.
func (e *QuorumError) Error() string {
	return fmt.Sprintf("refuse to remove etcd member %x: %d of the remaining %d voters are healthy, a majority needs %d (unhealthy: %s)",
		e.Member, e.Healthy, e.Voters, e.Voters/2+1, strings.Join(e.Unhealthy, "; "))
}

// Is makes errors.Is(err, ErrWouldBreakQuorum) true.
func (e *QuorumError) Is(target error) bool { return target == ErrWouldBreakQuorum }

// RemoveMember removes member id from the cluster. Before removing a voter
// it checks every other voter's health (a status request each, with
// StatusTimeout) and refuses with a *QuorumError when the healthy ones would
// not be a majority of the voters that remain. Removing a learner is always
// allowed. An unknown ID gives ErrMemberNotFound. etcd applies its own,
// stricter check (peers connected for five seconds); while it answers that
// the cluster is unhealthy, RemoveMember asks again until ctx ends.
func RemoveMember(ctx context.Context, cli *clientv3.Client, id uint64) error {
	list, err := cli.MemberList(ctx)
	if err != nil {
		return fmt.Errorf("remove etcd member %x: list members: %w", id, err)
	}
	var target *etcdserverpb.Member
	var remaining []Member
	for _, m := range list.Members {
		if m.ID == id {
			target = m
		} else if !m.IsLearner {
			remaining = append(remaining, memberFromPB(m))
		}
	}
	if target == nil {
		return fmt.Errorf("remove etcd member %x: %w", id, ErrMemberNotFound)
	}
	if !target.IsLearner {
		statuses := memberStatuses(ctx, cli, remaining)
		qe := &QuorumError{Member: id, Voters: len(remaining)}
		for i, st := range statuses {
			if st.err == nil {
				qe.Healthy++
			} else {
				qe.Unhealthy = append(qe.Unhealthy, fmt.Sprintf("%s (%s): %v", remaining[i].Name, remaining[i].IDString(), st.err))
			}
		}
		if qe.Voters == 0 || qe.Healthy < qe.Voters/2+1 {
			return qe
		}
	}
	err = retryUnhealthy(ctx, func() error {
		_, err := cli.MemberRemove(ctx, id)
		return err
	})
	if err != nil {
		if errors.Is(err, rpctypes.ErrMemberNotFound) {
			return fmt.Errorf("remove etcd member %x: %w", id, ErrMemberNotFound)
		}
		return fmt.Errorf("remove etcd member %x (%s): %w", id, target.Name, err)
	}
	return nil
}

// waitVoter waits until member id's own status says it is no longer a
// learner: the promotion is committed before the member applies it.
func waitVoter(ctx context.Context, cli *clientv3.Client, id uint64) error {
	tick := time.NewTicker(waitInterval)
	defer tick.Stop()
	last := "no status yet"
	for {
		members, err := ListMembers(ctx, cli)
		if err != nil {
			last = err.Error()
		}
		for _, m := range members {
			if m.ID != id {
				continue
			}
			st := memberStatusOf(ctx, cli, m)
			switch {
			case st.resp != nil && !st.resp.IsLearner:
				return nil
			case st.err != nil:
				last = st.err.Error()
			default:
				last = "still a learner"
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("promote etcd member %x: promoted, but the member has not applied it: %s: %w", id, last, context.Cause(ctx))
		case <-tick.C:
		}
	}
}
