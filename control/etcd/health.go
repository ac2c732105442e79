package etcd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// StatusTimeout bounds each member's status request in Health,
// RemoveMember and WaitCaughtUp, so one dead member cannot stall the check.
const StatusTimeout = 2 * time.Second

// CaughtUpLag is how many raft entries a member's applied index may trail
// the leader's and still count as caught up.
const CaughtUpLag = 16

// waitInterval is how often WaitCaughtUp looks again.
const waitInterval = 100 * time.Millisecond

// MemberHealth is one member's answer to a status request.
type MemberHealth struct {
	Member
	// Healthy is true when the member answered, knows a leader and reports
	// no errors (alarms).
	Healthy bool
	// Error says why the member is not healthy; empty when it is.
	Error string
	// Leader is the leader ID the member reports.
	Leader uint64
	// RaftTerm, RaftIndex and RaftAppliedIndex are the member's raft
	// progress.
	RaftTerm, RaftIndex, RaftAppliedIndex uint64
	// Lag is how many entries the member has applied fewer than the leader
	// (0 when either is unknown).
	Lag uint64
	// DBSize is the member's database size in bytes.
	DBSize int64
}

// ClusterHealth is the state of the whole cluster as its members report it.
type ClusterHealth struct {
	// Leader is the leader's ID as reported by the healthy members (0 if
	// none).
	Leader uint64
	// Members are in member-list order.
	Members []MemberHealth
	// Voters counts voting members, HealthyVoters those that are healthy.
	Voters, HealthyVoters int
	// Quorum is true when the healthy voters are a majority of the voters.
	Quorum bool
}

type memberStatus struct {
	resp *clientv3.StatusResponse
	err  error
}

// memberStatuses asks every member for its status in parallel, each bounded
// by StatusTimeout.
func memberStatuses(ctx context.Context, cli *clientv3.Client, members []Member) []memberStatus {
	out := make([]memberStatus, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		wg.Go(func() {
			out[i] = memberStatusOf(ctx, cli, m)
		})
	}
	wg.Wait()
	return out
}

func memberStatusOf(ctx context.Context, cli *clientv3.Client, m Member) memberStatus {
	if len(m.ClientURLs) == 0 {
		return memberStatus{err: errors.New("not started")}
	}
	var errs []error
	for _, ep := range m.ClientURLs {
		sctx, cancel := context.WithTimeout(ctx, StatusTimeout)
		resp, err := cli.Status(sctx, ep)
		cancel()
		if err == nil {
			if len(resp.Errors) > 0 {
				return memberStatus{resp: resp, err: fmt.Errorf("alarms: %s", strings.Join(resp.Errors, ", "))}
			}
			if resp.Leader == 0 {
				return memberStatus{resp: resp, err: errors.New("no leader")}
			}
			return memberStatus{resp: resp}
		}
		errs = append(errs, fmt.Errorf("%s: %w", ep, err))
	}
	return memberStatus{err: errors.Join(errs...)}
}

// Health asks every member for its status and reports the leader, each
// member's progress and lag, and whether quorum holds. It fails only if the
// member list cannot be read, which itself means quorum is lost.
func Health(ctx context.Context, cli *clientv3.Client) (ClusterHealth, error) {
	members, err := ListMembers(ctx, cli)
	if err != nil {
		return ClusterHealth{}, fmt.Errorf("etcd health: %w", err)
	}
	statuses := memberStatuses(ctx, cli, members)
	var h ClusterHealth
	for i, m := range members {
		mh := MemberHealth{Member: m}
		st := statuses[i]
		if st.resp != nil {
			mh.Leader = st.resp.Leader
			mh.RaftTerm = st.resp.RaftTerm
			mh.RaftIndex = st.resp.RaftIndex
			mh.RaftAppliedIndex = st.resp.RaftAppliedIndex
			mh.DBSize = st.resp.DbSize
		}
		if st.err != nil {
			mh.Error = st.err.Error()
		} else {
			mh.Healthy = true
			if h.Leader == 0 {
				h.Leader = mh.Leader
			}
		}
		if !m.IsLearner {
			h.Voters++
			if mh.Healthy {
				h.HealthyVoters++
			}
		}
		h.Members = append(h.Members, mh)
	}
	var leaderApplied uint64
	for _, mh := range h.Members {
		if mh.ID == h.Leader && mh.Healthy {
			leaderApplied = mh.RaftAppliedIndex
		}
	}
	for i := range h.Members {
		mh := &h.Members[i]
		if leaderApplied > 0 && mh.Healthy && mh.RaftAppliedIndex < leaderApplied {
			mh.Lag = leaderApplied - mh.RaftAppliedIndex
		}
	}
	h.Quorum = h.Voters > 0 && h.HealthyVoters >= h.Voters/2+1
	return h, nil
}

// WaitCaughtUp waits until member id is healthy and its applied raft index
// is within CaughtUpLag of the leader's, or ctx ends (the error then says
// how far behind it was last seen).
func WaitCaughtUp(ctx context.Context, cli *clientv3.Client, id uint64) error {
	tick := time.NewTicker(waitInterval)
	defer tick.Stop()
	last := "no status yet"
	for {
		h, err := Health(ctx, cli)
		if err != nil {
			last = err.Error()
		} else {
			found := false
			for _, mh := range h.Members {
				if mh.ID != id {
					continue
				}
				found = true
				switch {
				case !mh.Healthy:
					last = "unhealthy: " + mh.Error
				case h.Leader == 0:
					last = "no leader"
				case mh.Lag <= CaughtUpLag && leaderKnown(h):
					return nil
				default:
					last = fmt.Sprintf("%d entries behind the leader", mh.Lag)
				}
			}
			if !found {
				return fmt.Errorf("wait for etcd member %x to catch up: %w", id, ErrMemberNotFound)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for etcd member %x to catch up: %s: %w", id, last, context.Cause(ctx))
		case <-tick.C:
		}
	}
}

// leaderKnown reports whether the leader itself answered, so lags are
// measured against it.
func leaderKnown(h ClusterHealth) bool {
	for _, mh := range h.Members {
		if mh.ID == h.Leader {
			return mh.Healthy
		}
	}
	return false
}
