package server_test

import (
	"net/http"
	"testing"

	"github.com/berth-io/berth/control/api"
)

func TestIntegrationMembersListAndRefuseBreakingQuorum(t *testing.T) {
	c := newCluster(t)
	var list api.MemberList
	c.must(c.admin, http.StatusOK, http.MethodGet, "/v1/members", nil, &list)
	if len(list.Items) != 1 || !list.Items[0].Status.IsLeader || !list.Items[0].Status.Started || list.Items[0].Status.ID == "" {
		t.Fatalf("members: %+v, want the one started leader", list.Items)
	}
	id := list.Items[0].Status.ID
	st := c.expectError(c.admin, api.ReasonConflict, http.MethodDelete, "/v1/members/"+id, nil)
	if st.Message == "" {
		t.Fatal("quorum refusal without a message")
	}
	c.expectError(c.admin, api.ReasonNotFound, http.MethodPost, "/v1/members/abc123/promote", nil)
	c.expectError(c.admin, api.ReasonBadRequest, http.MethodPost, "/v1/members/not-hex/promote", nil)
	bad := &api.MemberAddRequest{Name: "cp2", PeerURLs: []string{"ftp://x"}}
	st = c.expectError(c.admin, api.ReasonInvalid, http.MethodPost, "/v1/members", bad)
	if len(st.Causes) != 1 || st.Causes[0].Field != "peerURLs[0]" {
		t.Fatalf("causes %v, want peerURLs[0]", st.Causes)
	}
}
