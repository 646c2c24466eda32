// Package hostlink is the appliance's channel to the host launcher: the
// guest reports its health and forwards its operational logs; nothing flows
// the other way.
//
// Privacy: only the init's and the worker's operational logs go here, never
// prompts, completions, keys or anything a user sent. The host is not
// trusted: it reads everything on this channel and may drop or stall it,
// so nothing confidential may be written to it, and nothing the guest
// decides depends on it (the channel is write-only for that reason).
//
// Transports: vsock (guest dials the host, CID 2, on Port) on TDX hosts, and
// a virtio-serial port named PortName where the host has no vhost-vsock
// (the development profile under TCG). Open takes the first that connects.
//
// The wire format is newline-delimited JSON, one Message a line, at most
// MaxMessage bytes each; Decoder is the host's reader.
//
// Health: after the first Health call the link repeats the last state
// every Interval (5 s). The launcher restarts a guest that reported Ready
// and then goes silent (30 s by default) or that reports Failed, so a
// running guest keeps its link open.
//
// In the guest:
//
//	link, err := hostlink.Open(ctx, hostlink.Options{})
//	if err != nil { ... } // errors.Is(err, hostlink.ErrNoChannel): no host channel
//	defer link.Close()
//	fmt.Fprintln(link.Writer(), "cocoon-init: worker started")
//	link.Health(hostlink.Ready, "")
package hostlink
