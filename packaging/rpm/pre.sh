# wharf .rpm %pre: the wharf system user, before the files land.
getent group wharf >/dev/null || groupadd --system wharf
getent passwd wharf >/dev/null ||
	useradd --system --gid wharf --home-dir /var/lib/wharf --no-create-home \
		--shell /sbin/nologin --comment "wharf registry" wharf
exit 0
