package services

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/berth-io/berth/control/api"
	"github.com/miekg/dns"
)

// DefaultDomain is the cluster DNS domain: services are
// <service>.<namespace>.svc.berth.
const DefaultDomain = "berth"

// DefaultDNSTTL is the TTL of service answers: short, so a re-created
// service's new cluster IP is seen quickly.
const DefaultDNSTTL = 5

// DNSConfig configures a node's DNS server.
type DNSConfig struct {
	// Domain is the cluster domain; default DefaultDomain.
	Domain string
	// Upstreams are resolvers ("host:port") for names outside the cluster
	// domain. Empty (the default, as testbeds have no uplink) answers such
	// names with REFUSED so clients fail at once.
	Upstreams []string
	// TTL of answers in seconds; default DefaultDNSTTL.
	TTL uint32
	// Logger receives a debug record per failed upstream exchange; nil
	// discards them.
	Logger *slog.Logger
}

// DNS answers A queries for <service>.<namespace>.svc.<domain> with the
// service's cluster IP, authoritatively. Update feeds it the service list;
// it is safe for concurrent use.
type DNS struct {
	cfg  DNSConfig
	zone string // "svc.<domain>." in lower case

	mu      sync.RWMutex
	records map[string]netip.Addr // fqdn → cluster IP
	names   map[string]bool       // every existing name, including "<ns>.svc.<domain>."
}

// NewDNS returns a server with no services yet.
func NewDNS(cfg DNSConfig) *DNS {
	if cfg.Domain == "" {
		cfg.Domain = DefaultDomain
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultDNSTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Domain = strings.ToLower(strings.Trim(cfg.Domain, "."))
	return &DNS{cfg: cfg, zone: "svc." + cfg.Domain + ".", records: map[string]netip.Addr{}, names: map[string]bool{}}
}

// Update replaces the served names with those of services (services without
// an IPv4 cluster IP are left out).
func (d *DNS) Update(services []api.Service) {
	records := make(map[string]netip.Addr, len(services))
	names := map[string]bool{d.zone: true, d.cfg.Domain + ".": true}
	for _, s := range services {
		ip, err := netip.ParseAddr(s.Spec.ClusterIP)
		if err != nil || !ip.Unmap().Is4() {
			continue
		}
		ns := strings.ToLower(s.Metadata.Namespace)
		if ns == "" {
			ns = api.DefaultNamespace
		}
		fqdn := strings.ToLower(s.Metadata.Name) + "." + ns + "." + d.zone
		records[fqdn] = ip.Unmap()
		names[fqdn] = true
		names[ns+"."+d.zone] = true
	}
	d.mu.Lock()
	d.records, d.names = records, names
	d.mu.Unlock()
}

// ServeDNS answers one query; it implements dns.Handler.
func (d *DNS) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	resp := d.Answer(ctx, req)
	_ = w.WriteMsg(resp)
}

// Answer computes the response to req: authoritative answers inside the
// cluster domain (NXDOMAIN for unknown names), the upstreams' answer or
// REFUSED outside it.
func (d *DNS) Answer(ctx context.Context, req *dns.Msg) *dns.Msg {
	resp := new(dns.Msg)
	if req.Opcode != dns.OpcodeQuery {
		return resp.SetRcode(req, dns.RcodeNotImplemented)
	}
	if len(req.Question) != 1 {
		return resp.SetRcode(req, dns.RcodeFormatError)
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	domain := d.cfg.Domain + "."
	if name != domain && !strings.HasSuffix(name, "."+domain) {
		return d.forward(ctx, req)
	}
	resp.SetReply(req)
	resp.Authoritative = true
	resp.RecursionAvailable = len(d.cfg.Upstreams) > 0
	d.mu.RLock()
	ip, found := d.records[name]
	exists := d.names[name]
	d.mu.RUnlock()
	switch {
	case found && q.Qclass == dns.ClassINET && (q.Qtype == dns.TypeA || q.Qtype == dns.TypeANY):
		resp.Answer = append(resp.Answer, &dns.A{
			Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: d.cfg.TTL},
			A:   ip.AsSlice(),
		})
	case exists:
		resp.Ns = append(resp.Ns, d.soa())
	default:
		resp.Rcode = dns.RcodeNameError
		resp.Ns = append(resp.Ns, d.soa())
	}
	return resp
}

// soa is the cluster domain's SOA record, sent with negative answers so
// resolvers cache them briefly.
func (d *DNS) soa() dns.RR {
	domain := d.cfg.Domain + "."
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: domain, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: d.cfg.TTL},
		Ns:      "ns.dns." + domain,
		Mbox:    "hostmaster." + domain,
		Serial:  1,
		Refresh: 3600, Retry: 600, Expire: 86400,
		Minttl: d.cfg.TTL,
	}
}

// forward asks the upstreams in turn, or refuses when there are none or
// none answers.
func (d *DNS) forward(ctx context.Context, req *dns.Msg) *dns.Msg {
	c := &dns.Client{Timeout: 2 * time.Second}
	for _, up := range d.cfg.Upstreams {
		resp, _, err := c.ExchangeContext(ctx, req, up)
		if err == nil && resp != nil {
			return resp
		}
		d.cfg.Logger.Debug("upstream dns exchange failed", "upstream", up, "err", err)
	}
	return new(dns.Msg).SetRcode(req, dns.RcodeRefused)
}

// Serve answers queries on pc (UDP) and l (TCP) until ctx ends, then shuts
// both servers down and returns nil; a failing server's error is returned
// at once. The caller creates the sockets (and so chooses their network
// namespace) and Serve closes them.
func (d *DNS) Serve(ctx context.Context, pc net.PacketConn, l net.Listener) error {
	udp := &dns.Server{PacketConn: pc, Handler: d}
	tcp := &dns.Server{Listener: l, Handler: d}
	errc := make(chan error, 2)
	go func() { errc <- udp.ActivateAndServe() }()
	go func() { errc <- tcp.ActivateAndServe() }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		err = fmt.Errorf("serve dns: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	// A server that has not finished starting reports an error on
	// shutdown; closing the sockets stops it all the same.
	_ = udp.ShutdownContext(sctx)
	_ = tcp.ShutdownContext(sctx)
	_ = pc.Close()
	_ = l.Close()
	return err
}

// ListenAndServe listens on addr ("ip:port", usually the pod gateway and
// port 53) over UDP and TCP in the caller's network namespace and serves
// until ctx ends.
func (d *DNS) ListenAndServe(ctx context.Context, addr string) error {
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp", addr)
	if err != nil {
		return fmt.Errorf("listen dns udp %s: %w", addr, err)
	}
	l, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return errors.Join(fmt.Errorf("listen dns tcp %s: %w", addr, err), pc.Close())
	}
	return d.Serve(ctx, pc, l)
}

// ResolvConf is the resolv.conf of a pod in namespace: the node's DNS
// server (the pod gateway address), search domains so a pod reaches
// services of its own namespace by bare name and others' by
// "<service>.<namespace>", and ndots:5 so such short names try the search
// list first.
func ResolvConf(nodeDNS, namespace string) []byte {
	return ResolvConfForDomain(nodeDNS, namespace, DefaultDomain)
}

// ResolvConfForDomain is ResolvConf for a cluster domain other than the
// default.
func ResolvConfForDomain(nodeDNS, namespace, domain string) []byte {
	if namespace == "" {
		namespace = api.DefaultNamespace
	}
	zone := "svc." + strings.Trim(domain, ".")
	return []byte(fmt.Sprintf("nameserver %s\nsearch %s.%s %s\noptions ndots:5\n", nodeDNS, namespace, zone, zone))
}
