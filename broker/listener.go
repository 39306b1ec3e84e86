package broker

import (
	"fmt"
	"net"
	"strconv"
)

// kfake hands its listen function "127.0.0.1:PORT" and advertises whatever
// address the listener reports. listener.go binds the configured host instead
// and makes the listener report the address clients should connect to, so that
// metadata never sends clients to 0.0.0.0.

// listenSpec is the parsed Addr option.
type listenSpec struct {
	host       string // host to bind, never empty
	port       int
	advertised string // host to advertise; empty means derive it from the bound address

	// local is set by listen: an address of the listener that this process
	// can always dial, whatever is advertised.
	local string
}

func parseAddr(hostport, advertised string) (*listenSpec, error) {
	host, portStr, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, fmt.Errorf("address %q: %w", hostport, err)
	}
	port, err := net.LookupPort("tcp", portStr)
	if err != nil {
		return nil, fmt.Errorf("address %q: %w", hostport, err)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return &listenSpec{host: host, port: port, advertised: advertised}, nil
}

// listen is the kfake.ListenFn: it keeps the port kfake asks for (the one
// given to kfake.Ports) and binds the configured host.
func (s *listenSpec) listen(network, address string) (net.Listener, error) {
	_, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort(s.host, portStr)
	ln, err := net.Listen(network, addr)
	if err != nil {
		if isAddrInUse(err) {
			return nil, fmt.Errorf("address %s is already in use (is another broker running?): %w", addr, err)
		}
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	bound := ln.Addr().(*net.TCPAddr)
	local := bound.IP.String()
	if bound.IP.IsUnspecified() {
		// Go binds "0.0.0.0" dual-stack and reports it as "::", so the
		// family comes from what was asked for.
		local = "127.0.0.1"
		if ip := net.ParseIP(s.host); ip != nil && ip.To4() == nil {
			local = "::1"
		}
	}
	s.local = net.JoinHostPort(local, strconv.Itoa(bound.Port))
	host := s.advertised
	if host == "" {
		host = local
	}
	return &advertisingListener{
		Listener: ln,
		addr:     advertisedAddr(net.JoinHostPort(host, strconv.Itoa(bound.Port))),
	}, nil
}

// advertisingListener is a listener whose Addr is the address clients are
// told to connect to rather than the address it is bound to.
type advertisingListener struct {
	net.Listener
	addr net.Addr
}

func (l *advertisingListener) Addr() net.Addr { return l.addr }

// advertisedAddr is a net.Addr that may hold a host name, which
// net.TCPAddr cannot.
type advertisedAddr string

func (a advertisedAddr) Network() string { return "tcp" }
func (a advertisedAddr) String() string  { return string(a) }
