package api

import "time"

// JoinToken is what the admin API returns when it mints a token: the secret
// is shown once and only its hash is stored.
type JoinToken struct {
	// Token is the secret a joining node presents, "<id>.<secret>".
	Token string `json:"token"`
	// ExpiresAt is when it stops working.
	ExpiresAt time.Time `json:"expiresAt"`
}

// JoinTokenRequest asks the admin API for a join token.
type JoinTokenRequest struct {
	// TTLSeconds is the token's life; default 600, at most 86400.
	TTLSeconds int32 `json:"ttlSeconds,omitempty"`
	// NodeName, when set, restricts the token to a node of that name.
	NodeName string `json:"nodeName,omitempty"`
}

// JoinRequest trades a join token for a node's certificates. It is the only
// request accepted without a client certificate.
type JoinRequest struct {
	// Token from the admin API.
	Token string `json:"token"`
	// NodeName is the name the node will register under.
	NodeName string `json:"nodeName"`
	// ClientCSR is a PEM certificate request for the node's client identity.
	ClientCSR string `json:"clientCSR"`
	// ServingCSR is a PEM certificate request for the agent's HTTPS server,
	// with the node's addresses as SANs.
	ServingCSR string `json:"servingCSR,omitempty"`
}

// JoinResponse carries a node's certificates and where the control plane is.
type JoinResponse struct {
	// ClientCertificate is the node's PEM client certificate.
	ClientCertificate string `json:"clientCertificate"`
	// ServingCertificate is the agent's PEM serving certificate.
	ServingCertificate string `json:"servingCertificate,omitempty"`
	// CACertificate is the cluster CA, PEM.
	CACertificate string `json:"caCertificate"`
	// ControlPlane lists the API endpoints.
	ControlPlane ControlPlane `json:"controlPlane"`
}

// RenewRequest renews the caller's own certificates before they expire.
type RenewRequest struct {
	// ClientCSR is a PEM certificate request for the caller's identity.
	ClientCSR string `json:"clientCSR"`
	// ServingCSR optionally renews a node's serving certificate too.
	ServingCSR string `json:"servingCSR,omitempty"`
}

// MemberAddRequest asks the control plane to add an etcd learner.
type MemberAddRequest struct {
	// Name of the new member (the control-plane host's name).
	Name string `json:"name"`
	// PeerURLs the new member will listen on.
	PeerURLs []string `json:"peerURLs"`
}

// MemberAddResponse says how the new member must start.
type MemberAddResponse struct {
	// Member is the added learner.
	Member Member `json:"member"`
	// InitialCluster is the etcd --initial-cluster value for it.
	InitialCluster string `json:"initialCluster"`
}

// EvictionRequest asks to evict a pod while respecting its deployment's
// availability; the server refuses with TooManyRequests when evicting it
// now would take the deployment below replicas - maxUnavailable.
type EvictionRequest struct {
	// GracePeriodSeconds overrides the pod's termination grace period.
	GracePeriodSeconds *int64 `json:"gracePeriodSeconds,omitempty"`
}
