package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/etcd"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Membership changes the etcd cluster behind the control plane. The server
// uses EtcdMembership over its store's client unless Config.Membership
// supplies another (tests).
type Membership interface {
	// ListMembers returns every member, learners included.
	ListMembers(ctx context.Context) ([]api.Member, error)
	// AddLearner adds a non-voting member and returns it with the
	// --initial-cluster value it must start with.
	AddLearner(ctx context.Context, name string, peerURLs []string) (api.Member, string, error)
	// Promote makes a learner that has caught up a voting member.
	Promote(ctx context.Context, id uint64) error
	// RemoveMember removes a member, refusing (with an api Conflict) when
	// that would leave the cluster without a majority of healthy voters.
	RemoveMember(ctx context.Context, id uint64) error
}

// EtcdMembership is Membership through control/etcd, which checks quorum
// before removing a voter.
type EtcdMembership struct {
	// Client talks to the cluster.
	Client *clientv3.Client
}

func toAPIMember(m etcd.Member, leader uint64) api.Member {
	am := api.Member{
		Metadata: api.ObjectMeta{Name: m.Name},
		Status: api.MemberStatus{
			ID:         m.IDString(),
			PeerURLs:   m.PeerURLs,
			ClientURLs: m.ClientURLs,
			IsLearner:  m.IsLearner,
			Started:    m.Started,
			IsLeader:   leader != 0 && m.ID == leader,
		},
	}
	api.SetTypeMeta(&am)
	return am
}

// ListMembers returns the members with the leader marked.
func (m EtcdMembership) ListMembers(ctx context.Context) ([]api.Member, error) {
	members, err := etcd.ListMembers(ctx, m.Client)
	if err != nil {
		return nil, etcdError(err)
	}
	var leader uint64
	for _, ep := range m.Client.Endpoints() {
		if st, err := m.Client.Status(ctx, ep); err == nil {
			leader = st.Leader
			break
		}
	}
	out := make([]api.Member, 0, len(members))
	for _, mem := range members {
		out = append(out, toAPIMember(mem, leader))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Metadata.Name < out[j].Metadata.Name })
	return out, nil
}

// AddLearner adds a learner and returns its initial cluster.
func (m EtcdMembership) AddLearner(ctx context.Context, name string, peerURLs []string) (api.Member, string, error) {
	mem, initial, err := etcd.AddLearner(ctx, m.Client, name, peerURLs)
	if err != nil {
		return api.Member{}, "", etcdError(err)
	}
	am := toAPIMember(mem, 0)
	am.Metadata.Name = name
	return am, initial, nil
}

// Promote promotes a learner, waiting (within ctx) for it to catch up.
func (m EtcdMembership) Promote(ctx context.Context, id uint64) error {
	return etcdError(etcd.Promote(ctx, m.Client, id))
}

// RemoveMember removes a member unless that would break quorum.
func (m EtcdMembership) RemoveMember(ctx context.Context, id uint64) error {
	return etcdError(etcd.RemoveMember(ctx, m.Client, id))
}

// etcdError turns etcd's membership refusals into api errors.
func etcdError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, etcd.ErrMemberNotFound), errors.Is(err, rpctypes.ErrMemberNotFound):
		return api.NewError(api.ReasonNotFound, "%v: list members with GET /v1/members", err)
	case errors.Is(err, etcd.ErrWouldBreakQuorum):
		return api.NewError(api.ReasonConflict, "%v: bring the unhealthy members back or add members first", err)
	case errors.Is(err, etcd.ErrLearnerNotReady):
		return api.NewError(api.ReasonConflict, "%v: retry once it has caught up", err)
	case errors.Is(err, rpctypes.ErrMemberNotLearner), errors.Is(err, rpctypes.ErrTooManyLearners),
		errors.Is(err, rpctypes.ErrPeerURLExist), errors.Is(err, rpctypes.ErrUnhealthy), errors.Is(err, rpctypes.ErrMemberExist):
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
