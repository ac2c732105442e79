// Package pki is berth's cluster certificate authority: it mints the cluster
// CA, issues and parses the certificates that name every caller (admins,
// nodes, control-plane servers, etcd peers), builds the TLS configurations
// every berth connection uses, and creates and checks the short-lived join
// tokens that let a new node obtain its first certificate.
//
// The life of a cluster's credentials:
//
//   - Bootstrap: NewCA creates the CA once; its PEM encoding (CertPEM, KeyPEM)
//     is stored by the caller and reloaded with LoadCA.
//   - Servers and admins: CA.Issue creates a key and a certificate for an
//     Identity (AdminIdentity, ServerIdentity, EtcdPeerIdentity).
//   - Nodes: the node creates its own key (GenerateKey) and a request
//     (NewCSR with NodeIdentity), presents a join token (NewJoinToken,
//     VerifyJoinToken), and the control plane signs the request with
//     CA.SignNodeCSR, which refuses anything beyond that node's own identity.
//   - Every connection: ServerTLSConfig and ClientTLSConfig (TLS 1.2 or
//     newer, the cluster CA as the only root); CertStore swaps a renewed
//     certificate in without restarting a listener; NeedsRenewal says when.
//   - Authorisation: IdentityFromCert reads who is calling from a verified
//     client certificate; SerialString names a certificate for revocation.
//
// This package does cryptography and encoding only. It never performs
// network or disk I/O, never logs, and never stores a join token's secret:
// a JoinTokenRecord holds only its hash, and no error or String method
// includes a secret or a private key.
package pki
