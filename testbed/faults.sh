#!/usr/bin/env bash
# faults.sh builds and removes a LAN of network namespaces on one bridge,
# and strikes it with network faults, for running scopemesh nodes on real
# network stacks under a fault schedule. It needs root, ip(8), iptables(8)
# and tc(8).
#
#   faults.sh up PREFIX N                     build the LAN with nodes n0..n(N-1)
#   faults.sh down PREFIX                     remove it, and stop what runs in it
#   faults.sh guard PREFIX                    remove it once standard input closes
#   faults.sh cut PREFIX NODE [ADDR...]       NODE drops what arrives from ADDRs (none: heals)
#   faults.sh slow PREFIX NODE on|off [RATE]  NODE's link turns slow and lossy, or back
#   faults.sh exec PREFIX NODE CMD...         run CMD in NODE's namespace
#
# The LAN, all in namespaces named PREFIX-<name> (PREFIX: 1 to 8 lowercase
# letters and digits, unique per run):
#
#   PREFIX-br   bridge "lan", no address of its own
#         |          |               |
#   PREFIX-n0   PREFIX-n1  ...  PREFIX-n(N-1)
#   10.55.0.1   10.55.0.2       10.55.0.N       (eth0, 10.55.0.0/24)
#
# cut replaces the DROP rules of NODE's chain "faults", hooked into its
# INPUT: what arrives from ADDRs is dropped, silently, as a broken link
# drops it, so that the nodes find out only by their keepalives. Not in
# OUTPUT: a DROP there fails the sender's sendmsg with EPERM, which closes
# a QUIC connection at once, as no real network does. A partition is a cut
# on both ends of every link between its groups, one direction each.
#
# slow puts netem (100ms delay with 30ms jitter, 2% loss; limited to RATE
# if given) on both ends of NODE's link. Kernels without sch_netem refuse
# it: then slow rate-limits both ends with tbf (RATE, default 1mbit; its
# queue delays what it holds) and drops 2% of what NODE receives at random
# with iptables' statistic match. It prints which it did.
#
# Every link lives inside the namespaces: removing them removes everything.
# If `up` fails half-way, it removes what it built. A driver that may die
# without cleaning up starts `guard` first, holding its standard input: when
# the driver exits, however it exits, the input closes and guard removes the
# LAN.
set -euo pipefail
. "$(dirname "$0")/netns.sh"

usage() {
	sed -n '7,13p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

# namespaces lists the namespaces of the prefix.
namespaces() {
	ip netns list | awk '{print $1}' | grep -E "^$PREFIX-(br|n[0-9]+)$" || true
}

up() {
	local n=$1 i
	[[ $n =~ ^[0-9]+$ && $n -ge 1 && $n -le 250 ]] || usage
	if [[ -n $(namespaces) ]]; then
		echo "faults.sh: namespaces of $PREFIX exist already: pick another prefix" >&2
		exit 1
	fi
	trap 'down' EXIT
	ip netns add "$(ns br)"
	ip -n "$(ns br)" link set lo up
	ip -n "$(ns br)" link add name lan type bridge
	ip -n "$(ns br)" link set lan up
	for ((i = 0; i < n; i++)); do
		ip netns add "$(ns n$i)"
		ip -n "$(ns n$i)" link set lo up
		ip -n "$(ns n$i)" link add name eth0 type veth peer name "n$i" netns "$(ns br)"
		ip -n "$(ns br)" link set "n$i" master lan up
		ip -n "$(ns n$i)" addr add "10.55.0.$((i + 1))/24" dev eth0
		ip -n "$(ns n$i)" link set eth0 up
		inside "n$i" iptables -N faults
		inside "n$i" iptables -A INPUT -j faults
	done
	trap - EXIT
}

# down removes every namespace of the prefix, after stopping the processes
# still running in them.
down() {
	local n pids
	for n in $(namespaces); do
		pids=$(ip netns pids "$n" 2>/dev/null || true)
		if [[ -n $pids ]]; then
			kill -KILL $pids 2>/dev/null || true
		fi
		ip netns del "$n" || true
	done
}

cut() {
	local node=$1 addr
	shift
	inside "$node" iptables -F faults
	for addr in "$@"; do
		inside "$node" iptables -A faults -s "$addr" -j DROP
	done
}

slow() {
	local node=$1 state=$2 rate=${3:-} qdisc
	# Both ends of NODE's link, so that both directions are slow.
	local ends=("$(ns "$node") eth0" "$(ns br) $node")
	local end
	for end in "${ends[@]}"; do
		set -- $end
		tc -n "$1" qdisc del dev "$2" root 2>/dev/null || true
	done
	# The lossy rule of the fallback sits in INPUT, apart from the cuts of
	# chain faults.
	while inside "$node" iptables -D INPUT -m statistic --mode random --probability 0.02 -j DROP 2>/dev/null; do :; done
	case "$state" in
	off) return ;;
	on) ;;
	*) usage ;;
	esac
	qdisc="netem delay 100ms 30ms loss 2%${rate:+ rate $rate}"
	if ! tc -n "$(ns "$node")" qdisc add dev eth0 root $qdisc 2>/dev/null; then
		qdisc="tbf rate ${rate:-1mbit} burst 32kbit latency 400ms"
		inside "$node" iptables -A INPUT -m statistic --mode random --probability 0.02 -j DROP
		echo "no netem in this kernel: tbf (${rate:-1mbit}) and 2% drops with iptables statistic"
		tc -n "$(ns "$node")" qdisc add dev eth0 root $qdisc
	else
		echo "netem"
	fi
	tc -n "$(ns br)" qdisc add dev "$node" root $qdisc
}

[[ $# -ge 2 ]] || usage
cmd=$1
PREFIX=$2
check_prefix "$PREFIX"
shift 2
case "$cmd" in
up) [[ $# -eq 1 ]] || usage; up "$1" ;;
down) [[ $# -eq 0 ]] || usage; down ;;
guard) [[ $# -eq 0 ]] || usage; guard ;;
cut) [[ $# -ge 1 ]] || usage; cut "$@" ;;
slow) [[ $# -eq 2 || $# -eq 3 ]] || usage; slow "$@" ;;
exec) [[ $# -ge 2 ]] || usage; exec_in "$@" ;;
*) usage ;;
esac
