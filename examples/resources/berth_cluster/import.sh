# Adopt a running cluster and its CA (so lost state never leads to a second
# CA): an admin client configuration and the CA key copied from
# /etc/berth/pki/ca.key on a control-plane host, separated by a comma.
# The next apply records the hosts without reinstalling those already on
# the configured image and settings.
terraform import berth_cluster.this .cache/demo/admin.json,./ca.key
