# Infrastructure and data CLIs: each destructive subcommand is refused (the
# program never runs, the deny row is in the log) and its benign siblings
# run untouched. The CLIs are fakes on PATH under their real names, each a
# real executable that records that it ran; ssh, sudo, kubectl exec and
# docker run carry a command to where no guard is, and that is judged too.

CLIS="terraform tofu terragrunt pulumi cdk kubectl oc helm docker podman docker-compose aws
gcloud gsutil az redis-cli mongosh supabase pscale neonctl turso heroku fly vercel netlify
railway gh ssh sudo"

fake_clis() {
	FAKEBIN=$T/bin; MARK=$T/marker
	mkdir -p "$FAKEBIN"
	for tool in $CLIS; do
		printf '#!/bin/sh\necho "%s $*" >> "%s"\n' "$tool" "$MARK" > "$FAKEBIN/$tool"
		chmod +x "$FAKEBIN/$tool"
	done
	export PATH=$FAKEBIN:/usr/bin:/bin
}

agent_sh() { guard /bin/sh -c "$1"; }

# refused RULE 'CMD': the shell's exec is denied by RULE, nothing ran, and
# the log has the deny row.
refused() {
	rm -f "$MARK"
	local err before=0 after
	[ ! -e "$AGENTGUARD_STATE_DIR/audit.db" ] || { ingest; before=$(db "select count(*) from events where op = 'exec' and decision = 'deny' and rule = '$1'"); }
	err=$(agent_sh "$2" 2>&1 >/dev/null) || true
	[ ! -e "$MARK" ] || fail "'$2' ran: $(cat "$MARK")"
	assert_contains "$err" "agentguard: denied exec"
	assert_contains "$err" "(rule $1: "
	ingest
	after=$(db "select count(*) from events where op = 'exec' and decision = 'deny' and rule = '$1'")
	[ "$after" -gt "$before" ] || fail "'$2': no deny row for $1 in the log"
}

# ran 'CMD': it ran (the fake recorded it) and nothing was refused.
ran() {
	rm -f "$MARK"
	local err
	err=$(agent_sh "$1" 2>&1 >/dev/null) || fail "'$1' failed: $err"
	assert_not_contains "$err" "agentguard: denied"
	[ -s "$MARK" ] || fail "'$1' did not run"
}

test_infrastructure_as_code() {
	fake_clis
	refused no-infra-destroy 'terraform destroy -auto-approve'
	refused no-infra-destroy 'terraform -chdir=prod destroy'
	refused no-infra-apply-destroy 'terraform apply -destroy -auto-approve'
	refused no-infra-destroy 'terraform state rm aws_db_instance.main'
	refused no-infra-destroy 'terraform workspace delete staging'
	refused no-infra-destroy 'tofu destroy'
	refused no-infra-destroy 'terragrunt run-all destroy'
	refused no-pulumi-destroy 'pulumi -C infra destroy --yes'
	refused no-pulumi-destroy 'pulumi stack rm dev'
	refused no-cdk-destroy 'cdk destroy --all'
	ran 'terraform plan -destroy'
	ran 'terraform destroy -help'
	ran 'terraform state list'
	ran 'tofu plan'
	ran 'pulumi preview'
}

test_terraform_arguments_from_the_environment() {
	fake_clis
	refused no-infra-apply-destroy 'TF_CLI_ARGS_apply=-destroy terraform apply -auto-approve'
	refused no-infra-apply-destroy 'export TF_CLI_ARGS=-destroy; terraform apply'
	refused no-infra-destroy 'TF_CLI_ARGS=destroy terraform'
	refused no-infra-apply-destroy "ssh ci 'TF_CLI_ARGS_apply=-destroy terraform apply'"
	refused no-infra-apply-destroy 'sudo TF_CLI_ARGS=-destroy terraform apply'
	ran 'TF_CLI_ARGS_plan=-destroy terraform plan'
	ran "ssh ci 'TF_CLI_ARGS_plan=-destroy terraform apply'"
	ran 'TF_CLI_ARGS_apply=-destroy terraform plan'
}

test_clusters_and_containers() {
	fake_clis
	refused no-k8s-delete 'kubectl -n prod delete deployment api'
	refused no-k8s-delete 'kubectl --context eu drain node-1 --ignore-daemonsets'
	refused no-k8s-delete 'oc delete project demo'
	refused no-k8s-force-replace 'kubectl replace --force -f pod.yaml'
	refused no-helm-uninstall 'helm -n prod uninstall web'
	refused no-docker-volume-rm 'docker --context prod rm -f web'
	refused no-docker-volume-rm 'docker rmi app:1'
	refused no-docker-volume-rm 'docker system prune -af'
	refused no-docker-volume-rm 'docker volume rm pgdata'
	refused no-docker-volume-rm 'podman network rm backend'
	refused no-compose-down-volumes 'docker compose -f dev.yml down -v'
	refused no-compose-down-volumes 'docker-compose down --volumes'
	ran 'kubectl get pods'
	ran 'kubectl describe pod delete-me'
	ran 'kubectl -n delete get pods'
	ran 'helm list -n prod'
	ran 'helm plugin uninstall diff'
	ran 'docker ps -a'
	ran 'docker logs rm'
	ran 'docker compose down'
	ran 'podman volume ls'
}

test_clouds_and_storage() {
	fake_clis
	refused no-aws-delete 'aws ec2 terminate-instances --instance-ids i-1'
	refused no-aws-delete 'aws --region eu-west-1 rds delete-db-instance --db-instance-identifier m'
	refused no-aws-delete 'aws s3api delete-objects --bucket b --delete file://k.json'
	refused no-s3-bulk-delete 'aws --profile prod s3 rm s3://b/k'
	refused no-s3-bulk-delete 'aws s3 rb s3://b --force'
	refused no-gcloud-delete 'gcloud compute instances delete vm-1 --zone z'
	refused no-gcloud-delete 'gcloud --project p sql instances delete main'
	refused no-gcloud-delete 'gcloud storage rm -r gs://b/d'
	refused no-gsutil-rm 'gsutil -m rm -r gs://b/d'
	refused no-az-delete 'az group delete -n rg --yes'
	refused no-az-delete 'az storage blob delete-batch -s c'
	ran 'aws ec2 describe-instances'
	ran 'aws s3 ls s3://rm'
	ran 'aws s3 cp delete.txt s3://b/'
	ran 'gcloud compute instances describe vm-1'
	ran 'gsutil ls gs://b'
	ran 'az storage blob list -c c'
}

test_databases_paas_and_github() {
	fake_clis
	refused no-datastore-wipe 'redis-cli -h cache -n 2 FLUSHALL'
	refused no-mongo-drop "mongosh app --eval 'db.dropDatabase()'"
	refused no-hosted-db-delete 'supabase db reset'
	refused no-hosted-db-delete 'pscale branch delete app dev'
	refused no-hosted-db-delete 'neonctl projects delete p-1'
	refused no-hosted-db-delete 'turso db destroy app --yes'
	refused no-paas-destroy 'heroku apps:destroy -a shop --confirm shop'
	refused no-paas-destroy 'fly volumes destroy vol_1'
	refused no-paas-destroy 'vercel remove app --yes'
	refused no-paas-destroy 'netlify sites:delete abc'
	refused no-paas-destroy 'railway down'
	refused no-gh-delete 'gh repo delete me/app --yes'
	refused no-gh-delete 'gh -R me/app release delete v1 -y'
	refused no-gh-api-delete 'gh api -X DELETE repos/me/app'
	ran 'redis-cli GET flushall'
	ran 'supabase db push'
	ran 'heroku logs -a shop'
	ran 'fly apps list'
	ran 'gh release list'
	ran 'gh api repos/me/app'
}

# What these carry elsewhere runs where no library is: it is judged here.
test_commands_run_elsewhere() {
	fake_clis
	refused no-infra-destroy 'ssh bastion terraform destroy'
	refused no-infra-destroy "ssh -p 2222 ops@bastion 'cd /srv/infra && terraform destroy -auto-approve'"
	refused no-k8s-delete "kubectl exec -n ci runner-0 -- sh -c 'kubectl delete ns prod'"
	refused no-infra-destroy "docker run --rm -v /src:/w img bash -lc 'tofu destroy'"
	refused no-datastore-wipe 'docker exec -u redis cache redis-cli FLUSHALL'
	refused no-gh-delete 'podman exec c env GH_TOKEN=x timeout 60 gh repo delete me/app --yes'
	refused no-infra-destroy 'sudo -u deploy terraform destroy'
	refused no-infra-destroy "ssh db \"sudo sh -c 'nohup terraform destroy'\""
	ran 'ssh bastion terraform plan'
	ran "kubectl exec pod -- sh -c 'ls /data'"
	ran 'docker run --rm img terraform plan'
	ran 'sudo -u deploy terraform plan'
}

# Local wrappers are judged where they start the program.
test_local_wrappers() {
	fake_clis
	refused no-k8s-delete 'env A=1 kubectl delete ns x'
	refused no-k8s-delete 'timeout 5 kubectl delete ns x'
	refused no-k8s-delete 'nohup kubectl delete ns x'
	refused no-k8s-delete "bash -c 'kubectl delete ns x'"
	refused no-k8s-delete 'echo ns | xargs kubectl delete'
	ran 'timeout 5 kubectl get ns'
}

# The program's identity: the file behind a symlink, the script an
# interpreter runs.
test_program_identity() {
	fake_clis
	ln -s "$FAKEBIN/terraform" "$FAKEBIN/tf"
	ln -s "$FAKEBIN/gcloud" "$T/cloud"
	printf '#!/usr/bin/env python3\nopen("%s", "a").write("aws ran\\n")\n' "$MARK" > "$T/aws"
	refused no-infra-destroy 'tf destroy'
	refused no-gcloud-delete "$T/cloud projects delete p"
	refused no-gcloud-delete 'sh $(command -v gcloud) projects delete p'
	refused no-s3-bulk-delete "python3 $T/aws s3 rb s3://b"
	ran 'tf plan'
	ran 'sh $(command -v gcloud) projects list'
	ran "python3 $T/aws s3 ls"
}
