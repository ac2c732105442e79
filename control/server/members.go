package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/berth-io/berth/control/api"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Membership changes the etcd cluster behind the control plane. The server
// uses EtcdMembership over its store's client unless Config.Membership
// supplies another (control/etcd's quorum-checking implementation).
type Membership interface {
	// ListMembers returns every member, learners included.
	ListMembers(ctx context.Context) ([]api.Member, error)
	// AddLearner adds a non-voting member and returns it with the
	// --initial-cluster value it must start with.
	AddLearner(ctx context.Context, name string, peerURLs []string) (api.Member, string, error)
	// Promote makes a learner that has caught up a voting member.
	Promote(ctx context.Context, id uint64) error
	// RemoveMember removes a member, refusing (with an api Conflict) when
	// that would leave the cluster without a quorum of started voters.
	RemoveMember(ctx context.Context, id uint64) error
}

// EtcdMembership is Membership over an etcd client.
type EtcdMembership struct {
	// Client talks to the cluster.
	Client *clientv3.Client
}

// ListMembers returns the members with the leader marked.
func (m EtcdMembership) ListMembers(ctx context.Context) ([]api.Member, error) {
	resp, err := m.Client.MemberList(ctx)
	if err != nil {
		return nil, fmt.Errorf("list etcd members: %w", etcdError(err))
	}
	var leader uint64
	for _, ep := range m.Client.Endpoints() {
		if st, err := m.Client.Status(ctx, ep); err == nil {
			leader = st.Leader
			break
		}
	}
	out := make([]api.Member, 0, len(resp.Members))
	for _, mem := range resp.Members {
		am := api.Member{
			Metadata: api.ObjectMeta{Name: mem.Name},
			Status: api.MemberStatus{
				ID:         strconv.FormatUint(mem.ID, 16),
				PeerURLs:   mem.PeerURLs,
				ClientURLs: mem.ClientURLs,
				IsLearner:  mem.IsLearner,
				Started:    mem.Name != "",
				IsLeader:   mem.ID == leader,
			},
		}
		api.SetTypeMeta(&am)
		out = append(out, am)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Metadata.Name < out[j].Metadata.Name })
	return out, nil
}

// AddLearner adds a learner and builds its initial cluster: every started
// member plus the new one.
func (m EtcdMembership) AddLearner(ctx context.Context, name string, peerURLs []string) (api.Member, string, error) {
	resp, err := m.Client.MemberAddAsLearner(ctx, peerURLs)
	if err != nil {
		return api.Member{}, "", fmt.Errorf("add etcd learner %s: %w", name, etcdError(err))
	}
	var parts []string
	for _, mem := range resp.Members {
		n := mem.Name
		if mem.ID == resp.Member.ID {
			n = name
		}
		if n == "" {
			continue
		}
		for _, u := range mem.PeerURLs {
			parts = append(parts, n+"="+u)
		}
	}
	sort.Strings(parts)
	am := api.Member{
		Metadata: api.ObjectMeta{Name: name},
		Status:   api.MemberStatus{ID: strconv.FormatUint(resp.Member.ID, 16), PeerURLs: resp.Member.PeerURLs, IsLearner: true},
	}
	api.SetTypeMeta(&am)
	return am, strings.Join(parts, ","), nil
}

// Promote promotes a learner.
func (m EtcdMembership) Promote(ctx context.Context, id uint64) error {
	if _, err := m.Client.MemberPromote(ctx, id); err != nil {
		return fmt.Errorf("promote etcd member %x: %w", id, etcdError(err))
	}
	return nil
}

// RemoveMember removes a member unless the voters left would be fewer than
// a quorum of started members.
func (m EtcdMembership) RemoveMember(ctx context.Context, id uint64) error {
	resp, err := m.Client.MemberList(ctx)
	if err != nil {
		return fmt.Errorf("remove etcd member %x: %w", id, etcdError(err))
	}
	var target *struct{ learner bool }
	voters, started := 0, 0
	for _, mem := range resp.Members {
		if mem.ID == id {
			target = &struct{ learner bool }{mem.IsLearner}
			continue
		}
		if !mem.IsLearner {
			voters++
			if mem.Name != "" {
				started++
			}
		}
	}
	if target == nil {
		return api.NewError(api.ReasonNotFound, "etcd member %x not found", id)
	}
	if !target.learner {
		if voters == 0 {
			return api.NewError(api.ReasonConflict, "etcd member %x is the last voting member: removing it would destroy the cluster", id)
		}
		if quorum := voters/2 + 1; started < quorum {
			return api.NewError(api.ReasonConflict,
				"removing etcd member %x would leave %d voting members of which only %d are started, below the quorum of %d: start or remove the others first",
				id, voters, started, quorum)
		}
	}
	if _, err := m.Client.MemberRemove(ctx, id); err != nil {
		return fmt.Errorf("remove etcd member %x: %w", id, etcdError(err))
	}
	return nil
}

// etcdError turns etcd's membership refusals into api errors.
func etcdError(err error) error {
	switch {
	case errors.Is(err, rpctypes.ErrMemberNotFound):
		return api.NewError(api.ReasonNotFound, "%v", err)
	case errors.Is(err, rpctypes.ErrMemberNotLearner), errors.Is(err, rpctypes.ErrMemberLearnerNotReady),
		errors.Is(err, rpctypes.ErrTooManyLearners), errors.Is(err, rpctypes.ErrPeerURLExist),
		errors.Is(err, rpctypes.ErrUnhealthy), errors.Is(err, rpctypes.ErrMemberExist):
		return api.NewError(api.ReasonConflict, "%v", err)
	}
	return err
}

func parseMemberID(s string) (uint64, error) {
	id, err := strconv.ParseUint(s, 16, 64)
	if err != nil || id == 0 {
		return 0, api.NewError(api.ReasonBadRequest, "member id %q: must be the hexadecimal id GET /v1/members shows", s)
	}
	return id, nil
}

func (s *Server) handleListMembers(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.requestContext(r)
	defer cancel()
	members, err := s.membership.ListMembers(ctx)
	if err != nil {
		writeError(w, err)
		return
	}
	list := &api.MemberList{Items: members}
	if list.Items == nil {
		list.Items = []api.Member{}
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) handleAddMember(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.requestContext(r)
	defer cancel()
	var req api.MemberAddRequest
	if err := decodeBody(w, r, s.maxBody, &req); err != nil {
		writeError(w, err)
		return
	}
	var errs api.FieldErrors
	api.ValidateName("name", req.Name, &errs)
	if len(req.PeerURLs) == 0 {
		errs.Add("peerURLs", "must list at least one URL")
	}
	for i, u := range req.PeerURLs {
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" {
			errs.Add(fmt.Sprintf("peerURLs[%d]", i), "must be an http(s) URL with a host and port, got %q", u)
		}
	}
	if len(errs) > 0 {
		writeError(w, api.NewInvalid("Member", req.Name, errs))
		return
	}
	m, initial, err := s.membership.AddLearner(ctx, req.Name, req.PeerURLs)
	if err != nil {
		writeError(w, err)
		return
	}
	s.log.Info("added etcd learner", "name", req.Name, "id", m.Status.ID, "by", callerFrom(r.Context()).id.String())
	writeJSON(w, http.StatusCreated, &api.MemberAddResponse{Member: m, InitialCluster: initial})
}

func (s *Server) handlePromoteMember(w http.ResponseWriter, r *http.Request, idText string) {
	ctx, cancel := s.requestContext(r)
	defer cancel()
	id, err := parseMemberID(idText)
	if err != nil {
		writeError(w, err)
		return
	}
	if err := s.membership.Promote(ctx, id); err != nil {
		writeError(w, err)
		return
	}
	s.log.Info("promoted etcd member", "id", idText, "by", callerFrom(r.Context()).id.String())
	s.answerMember(ctx, w, id)
}

func (s *Server) handleRemoveMember(w http.ResponseWriter, r *http.Request, idText string) {
	ctx, cancel := s.requestContext(r)
	defer cancel()
	id, err := parseMemberID(idText)
	if err != nil {
		writeError(w, err)
		return
	}
	if err := s.membership.RemoveMember(ctx, id); err != nil {
		writeError(w, err)
		return
	}
	s.log.Info("removed etcd member", "id", idText, "by", callerFrom(r.Context()).id.String())
	writeJSON(w, http.StatusOK, &api.Member{
		TypeMeta: api.TypeMeta{Kind: "Member", APIVersion: api.Version},
		Status:   api.MemberStatus{ID: idText},
	})
}

// answerMember answers the member with id as it is now.
func (s *Server) answerMember(ctx context.Context, w http.ResponseWriter, id uint64) {
	members, err := s.membership.ListMembers(ctx)
	if err != nil {
		writeError(w, err)
		return
	}
	want := strconv.FormatUint(id, 16)
	for i := range members {
		if members[i].Status.ID == want {
			writeJSON(w, http.StatusOK, &members[i])
			return
		}
	}
	writeError(w, api.NewError(api.ReasonNotFound, "etcd member %s not found", want))
}
