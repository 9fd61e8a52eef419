# netns.sh holds what nat.sh and faults.sh share; they source it. Each sets
# PREFIX, the prefix of its run's namespaces, before calling these.

# check_prefix PREFIX: exit unless PREFIX can prefix namespace names.
check_prefix() {
	[[ $1 =~ ^[a-z0-9]{1,8}$ ]] || { echo "$(basename "$0"): prefix $1 is not 1 to 8 lowercase letters and digits" >&2; exit 2; }
}

ns() { echo "$PREFIX-$1"; }

# inside NAME CMD...: run CMD in namespace PREFIX-NAME.
inside() {
	local name=$1
	shift
	ip netns exec "$(ns "$name")" "$@"
}

# guard: remove the namespaces (the script's down) once standard input
# closes — when the driver holding it exits, however it exits.
guard() {
	cat >/dev/null || true
	down
}

# exec_in NAME CMD...: replace this shell with CMD in namespace
# PREFIX-NAME, so whoever started the script can signal CMD itself.
exec_in() {
	exec ip netns exec "$(ns "$1")" "${@:2}"
}
