# knife / Chef configuration for the opscm Chef server @SERVER_NAME@ (region @REGION@).
current_dir = File.dirname(__FILE__)
log_level                :info
log_location             STDOUT
node_name                'pivotal'
client_key               File.join(current_dir, 'pivotal.pem')
chef_server_url          '@CHEF_SERVER_URL@'
cookbook_path            [File.join(current_dir, '..', 'cookbooks')]
