# wharf .rpm %postun ($1: 0 erase, 1 upgrade): restart after an upgrade if
# it was running. RPM has no purge: /var/lib/wharf and the wharf user stay
# (docs/install.md says how to delete them).
if [ -d /run/systemd/system ]; then
	systemctl --system daemon-reload >/dev/null 2>&1 || :
	if [ "$1" -ge 1 ]; then
		systemctl try-restart wharf.service >/dev/null 2>&1 || :
	fi
fi
exit 0
