package server

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/berth-io/berth/control/pki"
)

// Aux record keys the server reads and writes.
const (
	// AuxClusterID holds the cluster ID as a JSON string; bootstrap
	// creates it once and nothing ever replaces it.
	AuxClusterID = "cluster/id"
	// AuxEndpointsPrefix holds each control-plane instance's advertised
	// URL (a JSON string) under AuxEndpointsPrefix + name, kept alive for
	// as long as the instance serves.
	AuxEndpointsPrefix = "controlplane/endpoints/"
	// auxJoinTokens holds join token records (the hash only) by token ID.
	auxJoinTokens = "jointokens/"
	// auxNodeCerts holds the serials of the certificates issued to each
	// node: nodecerts/<node>/<serial>.
	auxNodeCerts = "nodecerts/"
	// auxRevoked holds revoked serials until their certificates expire.
	auxRevoked = "revoked/"
)

// Join token lifetimes.
const (
	defaultJoinTokenTTL = 600 * time.Second
	maxJoinTokenTTL     = 86400 * time.Second
)

// joinTokenRecord is the stored form of a join token.
type joinTokenRecord struct {
	pki.JoinTokenRecord
	// NodeName, when set, is the only node name the token may join as.
	NodeName string `json:"nodeName,omitempty"`
}

// certRecord remembers a certificate issued to a node, so deleting the
// Node can revoke it.
type certRecord struct {
	Serial   string    `json:"serial"`
	Node     string    `json:"node"`
	NotAfter time.Time `json:"notAfter"`
}

func (s *Server) handleMintToken(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.requestContext(r)
	defer cancel()
	var req api.JoinTokenRequest
	if err := decodeBody(w, r, s.maxBody, &req); err != nil && !isEmptyBody(err) {
		writeError(w, err)
		return
	}
	ttl := defaultJoinTokenTTL
	var errs api.FieldErrors
	if req.TTLSeconds != 0 {
		ttl = time.Duration(req.TTLSeconds) * time.Second
		if ttl < time.Second || ttl > maxJoinTokenTTL {
			errs.Add("ttlSeconds", "must be 1-%d, got %d", int(maxJoinTokenTTL/time.Second), req.TTLSeconds)
		}
	}
	if req.NodeName != "" {
		api.ValidateName("nodeName", req.NodeName, &errs)
	}
	if len(errs) > 0 {
		writeError(w, api.NewInvalid("JoinTokenRequest", req.NodeName, errs))
		return
	}
	token, rec := pki.NewJoinToken(ttl)
	now := s.now().UTC()
	rec.CreatedAt, rec.ExpiresAt = now, now.Add(ttl)
	created, err := s.store.CreateAux(ctx, auxJoinTokens+rec.ID, joinTokenRecord{JoinTokenRecord: rec, NodeName: req.NodeName}, ttl)
	if err != nil {
		writeError(w, fmt.Errorf("store join token record: %w", err))
		return
	}
	if !created {
		writeError(w, api.NewError(api.ReasonConflict, "a join token with the same ID exists already: mint another"))
		return
	}
	s.log.Info("minted join token", "tokenID", rec.ID, "expiresAt", rec.ExpiresAt, "nodeName", req.NodeName,
		"by", callerFrom(r.Context()).id.String())
	writeJSON(w, http.StatusCreated, &api.JoinToken{Token: token, ExpiresAt: rec.ExpiresAt})
}

// errJoinRefused is what every caller with a bad token hears: the reason
// (unknown, used, expired) is logged but not told, so guessing learns
// nothing.
var errJoinRefused = api.NewError(api.ReasonUnauthorized, "join token is invalid, expired or already used: mint a new one with POST /v1/jointokens")

func (s *Server) handleJoin(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.requestContext(r)
	defer cancel()
	var req api.JoinRequest
	if err := decodeBody(w, r, s.maxBody, &req); err != nil {
		writeError(w, err)
		return
	}
	var errs api.FieldErrors
	api.ValidateName("nodeName", req.NodeName, &errs)
	if req.ClientCSR == "" {
		errs.Add("clientCSR", "is required")
	}
	if len(errs) > 0 {
		writeError(w, api.NewInvalid("JoinRequest", req.NodeName, errs))
		return
	}
	id, err := pki.JoinTokenID(req.Token)
	if err != nil {
		s.log.Warn("join refused", "node", req.NodeName, "remote", r.RemoteAddr, "err", err)
		writeError(w, errJoinRefused)
		return
	}
	var rec joinTokenRecord
	found, err := s.store.GetAux(ctx, auxJoinTokens+id, &rec)
	if err != nil {
		writeError(w, fmt.Errorf("read join token record: %w", err))
		return
	}
	if !found {
		s.log.Warn("join refused", "node", req.NodeName, "remote", r.RemoteAddr, "tokenID", id, "err", pki.ErrTokenUnknown)
		writeError(w, errJoinRefused)
		return
	}
	if err := pki.VerifyJoinToken(req.Token, rec.JoinTokenRecord, s.now()); err != nil {
		s.log.Warn("join refused", "node", req.NodeName, "remote", r.RemoteAddr, "tokenID", id, "err", err)
		writeError(w, errJoinRefused)
		return
	}
	if rec.NodeName != "" && rec.NodeName != req.NodeName {
		writeError(w, api.NewError(api.ReasonForbidden, "this join token is for node %q, not %q", rec.NodeName, req.NodeName))
		return
	}
	certs, err := s.signNodeCertificates(req.NodeName, req.ClientCSR, req.ServingCSR, s.nodeCertValidity)
	if err != nil {
		writeError(w, err)
		return
	}
	// Consuming is the single-use guarantee: of two joins racing with one
	// token, only one finds the record here.
	var consumed joinTokenRecord
	found, err = s.store.ConsumeAux(ctx, auxJoinTokens+id, &consumed)
	if err != nil {
		writeError(w, fmt.Errorf("consume join token: %w", err))
		return
	}
	if !found || consumed.SecretHash != rec.SecretHash {
		s.log.Warn("join refused", "node", req.NodeName, "remote", r.RemoteAddr, "tokenID", id, "err", pki.ErrTokenUsed)
		writeError(w, errJoinRefused)
		return
	}
	if err := s.recordNodeCertificates(ctx, req.NodeName, certs.issued); err != nil {
		writeError(w, err)
		return
	}
	cp, err := s.controlPlane(ctx)
	if err != nil {
		writeError(w, err)
		return
	}
	s.log.Info("node joined", "node", req.NodeName, "tokenID", id, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, &api.JoinResponse{
		ClientCertificate:  string(certs.client),
		ServingCertificate: string(certs.serving),
		CACertificate:      string(s.ca.CertPEM()),
		ControlPlane:       cp,
	})
}

// nodeServingSigner is implemented by a CA that can sign a node agent's
// serving certificate request (with the node's addresses as SANs).
type nodeServingSigner interface {
	SignNodeServingCSR(csrPEM []byte, nodeName string, validity time.Duration) ([]byte, error)
}

type signedCerts struct {
	client, serving []byte
	issued          []*x509.Certificate
}

// signNodeCertificates signs a node's client request (and serving request,
// when given), refusing requests for more than the node's own identity.
func (s *Server) signNodeCertificates(node, clientCSR, servingCSR string, validity time.Duration) (signedCerts, error) {
	var out signedCerts
	client, err := s.ca.SignNodeCSR([]byte(clientCSR), node, validity)
	if err != nil {
		if errors.Is(err, pki.ErrCSRNotAllowed) {
			return out, api.NewError(api.ReasonForbidden, "client certificate request refused: %v", err)
		}
		return out, api.NewError(api.ReasonBadRequest, "client certificate request: %v", err)
	}
	out.client = client
	if servingCSR != "" {
		signer, ok := any(s.ca).(nodeServingSigner)
		if !ok {
			return out, api.NewError(api.ReasonBadRequest,
				"servingCSR: this control plane's CA cannot sign agent serving certificates; leave servingCSR empty")
		}
		serving, err := signer.SignNodeServingCSR([]byte(servingCSR), node, validity)
		if err != nil {
			if errors.Is(err, pki.ErrCSRNotAllowed) {
				return out, api.NewError(api.ReasonForbidden, "serving certificate request refused: %v", err)
			}
			return out, api.NewError(api.ReasonBadRequest, "serving certificate request: %v", err)
		}
		out.serving = serving
	}
	for _, pemBytes := range [][]byte{out.client, out.serving} {
		if len(pemBytes) == 0 {
			continue
		}
		cert, err := pki.ParseCert(pemBytes)
		if err != nil {
			return out, fmt.Errorf("read back a signed certificate: %w", err)
		}
		out.issued = append(out.issued, cert)
	}
	return out, nil
}

// recordNodeCertificates remembers the serials issued to a node until they
// expire, so deleting its Node revokes them.
func (s *Server) recordNodeCertificates(ctx context.Context, node string, certs []*x509.Certificate) error {
	for _, c := range certs {
		serial := pki.SerialString(c)
		ttl := c.NotAfter.Sub(s.now())
		if ttl <= 0 {
			continue
		}
		rec := certRecord{Serial: serial, Node: node, NotAfter: c.NotAfter.UTC()}
		if err := s.store.PutAux(ctx, auxNodeCerts+node+"/"+serial, rec, ttl); err != nil {
			return fmt.Errorf("record certificate %s of node %s: %w", serial, node, err)
		}
	}
	return nil
}

// revokeNodeCertificates revokes every recorded certificate of a node; the
// revocation lasts until each certificate would have expired.
func (s *Server) revokeNodeCertificates(ctx context.Context, node string) error {
	recs, err := s.store.ListAux(ctx, auxNodeCerts+node+"/")
	if err != nil {
		return fmt.Errorf("list certificates of node %s: %w", node, err)
	}
	for key, raw := range recs {
		var rec certRecord
		if err := json.Unmarshal(raw, &rec); err != nil {
			return fmt.Errorf("read certificate record %s: %w", key, err)
		}
		if ttl := rec.NotAfter.Sub(s.now()); ttl > 0 {
			if err := s.store.PutAux(ctx, auxRevoked+rec.Serial, rec, ttl); err != nil {
				return fmt.Errorf("revoke certificate %s of node %s: %w", rec.Serial, node, err)
			}
			s.revoked.add(rec.Serial, rec.NotAfter)
		}
		if err := s.store.DeleteAux(ctx, key); err != nil {
			return fmt.Errorf("forget certificate %s of node %s: %w", rec.Serial, node, err)
		}
		s.log.Info("revoked node certificate", "node", node, "serial", rec.Serial)
	}
	return nil
}

// handleRenew signs new certificates for the caller's own identity, for as
// long as its current certificate was valid.
func (s *Server) handleRenew(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.requestContext(r)
	defer cancel()
	c := callerFrom(r.Context())
	var req api.RenewRequest
	if err := decodeBody(w, r, s.maxBody, &req); err != nil {
		writeError(w, err)
		return
	}
	if req.ClientCSR == "" {
		var errs api.FieldErrors
		errs.Add("clientCSR", "is required")
		writeError(w, api.NewInvalid("RenewRequest", c.id.String(), errs))
		return
	}
	validity := c.cert.NotAfter.Sub(c.cert.NotBefore)
	var resp api.JoinResponse
	switch c.id.Role {
	case pki.RoleNode:
		certs, err := s.signNodeCertificates(c.id.Name, req.ClientCSR, req.ServingCSR, validity)
		if err != nil {
			writeError(w, err)
			return
		}
		if err := s.recordNodeCertificates(ctx, c.id.Name, certs.issued); err != nil {
			writeError(w, err)
			return
		}
		resp.ClientCertificate, resp.ServingCertificate = string(certs.client), string(certs.serving)
	default:
		if req.ServingCSR != "" {
			writeError(w, api.NewError(api.ReasonBadRequest, "servingCSR: only nodes renew serving certificates here"))
			return
		}
		cert, err := s.ca.SignCSR([]byte(req.ClientCSR), c.id, validity)
		if err != nil {
			writeError(w, api.NewError(api.ReasonBadRequest, "client certificate request: %v", err))
			return
		}
		resp.ClientCertificate = string(cert)
	}
	cp, err := s.controlPlane(ctx)
	if err != nil {
		writeError(w, err)
		return
	}
	resp.CACertificate = string(s.ca.CertPEM())
	resp.ControlPlane = cp
	s.log.Info("renewed certificates", "identity", c.id.String())
	writeJSON(w, http.StatusOK, &resp)
}

// controlPlane reads the published endpoints and the cluster ID.
func (s *Server) controlPlane(ctx context.Context) (api.ControlPlane, error) {
	cp := api.ControlPlane{Endpoints: []string{}}
	if _, err := s.store.GetAux(ctx, AuxClusterID, &cp.ClusterID); err != nil {
		return cp, fmt.Errorf("read cluster id: %w", err)
	}
	recs, err := s.store.ListAux(ctx, AuxEndpointsPrefix)
	if err != nil {
		return cp, fmt.Errorf("list control-plane endpoints: %w", err)
	}
	seen := map[string]bool{}
	for key, raw := range recs {
		var u string
		if err := json.Unmarshal(raw, &u); err != nil {
			s.log.Warn("skip unreadable control-plane endpoint record", "key", key, "err", err)
			continue
		}
		if u != "" && !seen[u] {
			seen[u] = true
			cp.Endpoints = append(cp.Endpoints, u)
		}
	}
	sort.Strings(cp.Endpoints)
	return cp, nil
}

func (s *Server) handleControlPlane(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.requestContext(r)
	defer cancel()
	cp, err := s.controlPlane(ctx)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, &cp)
}
