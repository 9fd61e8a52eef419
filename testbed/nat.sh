#!/usr/bin/env bash
# nat.sh builds and removes a simulated internet with two home networks
# behind NAT, out of network namespaces, for running scopemesh nodes on real
# network stacks. It needs root, ip(8) and iptables(8).
#
#   nat.sh up PREFIX [--random-fully]   build the networks
#   nat.sh down PREFIX                  remove them, and stop what runs in them
#   nat.sh guard PREFIX                 remove them once standard input closes
#   nat.sh wan PREFIX r1|r2 down|up     cut or restore a home router's uplink
#   nat.sh exec PREFIX NODE CMD...      run CMD in NODE's namespace
#
# The networks, all in namespaces named PREFIX-<name> (PREFIX: 1 to 8
# lowercase letters and digits, unique per run):
#
#   PREFIX-pub  11.0.0.1      a public node (bootstrap and relay)
#         |
#   PREFIX-net  bridge "internet"  the internet: 11.0.0.0/24
#         |                              |
#   PREFIX-r1   wan 11.0.0.11            PREFIX-r2   wan 11.0.0.12
#               lan 192.168.1.1                      lan 192.168.2.1
#         |     NAT                            |     NAT
#   PREFIX-h1   192.168.1.2              PREFIX-h2   192.168.2.2
#
# The internet uses 11.0.0.0/24 because libp2p never hole-punches between
# addresses it considers private or reserved for documentation; that range
# exists only inside these namespaces. Each router masquerades its LAN
# behind its WAN address — keeping source ports where it can, which lets
# hole punching work, or with --random-fully picking a random port for every
# connection, which defeats it — and drops unsolicited traffic from the WAN
# as a home router does. Its own stack must drop, not refuse, what arrives
# for it: a reset or port-unreachable answer to a punch attempt would close
# the mapping the punch is opening.
#
# Every link lives inside the namespaces: removing them removes everything.
# If `up` fails half-way, it removes what it built. A driver that may die
# without cleaning up starts `guard` first, holding its standard input: when
# the driver exits, however it exits, the input closes and guard removes the
# networks.
set -euo pipefail
. "$(dirname "$0")/netns.sh"

usage() {
	sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

NODES=(pub h1 h2 r1 r2 net)

# router NAME WAN-ADDR LAN-NET HOME: a home router between the internet and
# the home namespace HOME, and HOME's link to it.
router() {
	local r=$1 wan=$2 lan=$3 home=$4
	ip -n "$(ns "$r")" link add name wan type veth peer name "$r" netns "$(ns net)"
	ip -n "$(ns net)" link set "$r" master internet up
	ip -n "$(ns "$r")" addr add "$wan/24" dev wan
	ip -n "$(ns "$r")" link set wan up
	ip -n "$(ns "$r")" link add name lan type veth peer name eth0 netns "$(ns "$home")"
	ip -n "$(ns "$r")" addr add "$lan.1/24" dev lan
	ip -n "$(ns "$r")" link set lan up
	ip -n "$(ns "$home")" addr add "$lan.2/24" dev eth0
	ip -n "$(ns "$home")" link set eth0 up
	ip -n "$(ns "$home")" route add default via "$lan.1"

	inside "$r" sysctl -qw net.ipv4.ip_forward=1
	inside "$r" iptables -t nat -A POSTROUTING -o wan -j MASQUERADE $RANDOM_FULLY
	inside "$r" iptables -A FORWARD -i wan -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
	inside "$r" iptables -A FORWARD -i wan -j DROP
	inside "$r" iptables -A INPUT -i wan -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
	inside "$r" iptables -A INPUT -i wan -j DROP
}

up() {
	RANDOM_FULLY=""
	case "${1:-}" in
	"") ;;
	--random-fully) RANDOM_FULLY=--random-fully ;;
	*) usage ;;
	esac
	for n in "${NODES[@]}"; do
		if ip netns list | grep -qw "$(ns "$n")"; then
			echo "nat.sh: namespace $(ns "$n") exists already: pick another prefix" >&2
			exit 1
		fi
	done
	trap 'down' EXIT
	for n in "${NODES[@]}"; do
		ip netns add "$(ns "$n")"
		ip -n "$(ns "$n")" link set lo up
	done
	ip -n "$(ns net)" link add name internet type bridge
	ip -n "$(ns net)" link set internet up
	ip -n "$(ns pub)" link add name eth0 type veth peer name pub netns "$(ns net)"
	ip -n "$(ns net)" link set pub master internet up
	ip -n "$(ns pub)" addr add 11.0.0.1/24 dev eth0
	ip -n "$(ns pub)" link set eth0 up
	router r1 11.0.0.11 192.168.1 h1
	router r2 11.0.0.12 192.168.2 h2
	trap - EXIT
}

# down removes every namespace of the prefix, after stopping the processes
# still running in them, whichever of them exist.
down() {
	local n pids
	for n in "${NODES[@]}"; do
		ip netns list | grep -qw "$(ns "$n")" || continue
		pids=$(ip netns pids "$(ns "$n")" 2>/dev/null || true)
		if [[ -n $pids ]]; then
			kill -KILL $pids 2>/dev/null || true
		fi
		ip netns del "$(ns "$n")" || true
	done
}

wan() {
	local r=$1 state=$2
	[[ $r == r1 || $r == r2 ]] || usage
	case "$state" in
	down) ip -n "$(ns "$r")" link set wan down ;;
	up) ip -n "$(ns "$r")" link set wan up ;;
	*) usage ;;
	esac
}

[[ $# -ge 2 ]] || usage
cmd=$1
PREFIX=$2
check_prefix "$PREFIX"
shift 2
case "$cmd" in
up) up "$@" ;;
down) [[ $# -eq 0 ]] || usage; down ;;
guard) [[ $# -eq 0 ]] || usage; guard ;;
wan) [[ $# -eq 2 ]] || usage; wan "$@" ;;
exec) [[ $# -ge 2 ]] || usage; exec_in "$@" ;;
*) usage ;;
esac
