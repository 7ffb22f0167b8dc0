//! `GET /admin/policy-examples`: a few IAM session policies to start a connector's `policy` from. Each one
//! passes STS's limits (see the tests); placeholders are in capitals (`BUCKET`, `eu-west-1`…).

use axum::Json;
pub use idfed_api::admin::{PolicyExample, PolicyExampleList};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AdminErrors;
use super::{Admin, AdminResult};
use crate::api::AppState;

/// An example as compiled in; the answer is the shared [`PolicyExample`].
#[derive(Clone, Copy)]
struct Example {
    name: &'static str,
    description: &'static str,
    policy: &'static str,
}

const EXAMPLES: &[Example] = &[
    Example {
        name: "read-only",
        description: "Read-only access to common services' metadata and data: List, Get and Describe \
                      actions, like a narrow ReadOnlyAccess (the role's or user's own policy still applies).",
        policy: r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "ReadOnly",
      "Effect": "Allow",
      "Action": [
        "cloudwatch:Describe*", "cloudwatch:Get*", "cloudwatch:List*",
        "ec2:Describe*", "ecs:Describe*", "ecs:List*", "eks:Describe*", "eks:List*",
        "iam:Get*", "iam:List*", "lambda:Get*", "lambda:List*",
        "logs:Describe*", "logs:Get*", "logs:FilterLogEvents",
        "rds:Describe*", "s3:GetBucket*", "s3:GetObject", "s3:ListAllMyBuckets", "s3:ListBucket",
        "sns:Get*", "sns:List*", "sqs:Get*", "sqs:List*", "tag:Get*"
      ],
      "Resource": "*"
    }
  ]
}"#,
    },
    Example {
        name: "s3-one-bucket",
        description: "Read and write objects in one S3 bucket: replace BUCKET with its name.",
        policy: r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "ListTheBucket",
      "Effect": "Allow",
      "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
      "Resource": "arn:aws:s3:::BUCKET"
    },
    {
      "Sid": "ObjectsInTheBucket",
      "Effect": "Allow",
      "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
      "Resource": "arn:aws:s3:::BUCKET/*"
    }
  ]
}"#,
    },
    Example {
        name: "s3-one-bucket-read-only",
        description: "Read objects in one S3 bucket: replace BUCKET with its name.",
        policy: r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
      "Resource": "arn:aws:s3:::BUCKET"
    },
    {
      "Effect": "Allow",
      "Action": "s3:GetObject",
      "Resource": "arn:aws:s3:::BUCKET/*"
    }
  ]
}"#,
    },
    Example {
        name: "one-region-only",
        description: "Everything the principal may do, but only in one region (global services such as \
                      IAM, STS, CloudFront and Route 53 excepted): replace eu-west-1 with the region.",
        policy: r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "AllowAll",
      "Effect": "Allow",
      "Action": "*",
      "Resource": "*"
    },
    {
      "Sid": "DenyOutsideTheRegion",
      "Effect": "Deny",
      "NotAction": [
        "iam:*", "sts:*", "organizations:*", "cloudfront:*", "route53:*", "support:*",
        "budgets:*", "ce:*", "health:*", "waf:*", "globalaccelerator:*"
      ],
      "Resource": "*",
      "Condition": {
        "StringNotEquals": {"aws:RequestedRegion": ["eu-west-1"]}
      }
    }
  ]
}"#,
    },
    Example {
        name: "ec2-start-stop-by-tag",
        description: "Start, stop and reboot the EC2 instances tagged Team=TEAM, and see all instances: \
                      replace TEAM with the tag's value.",
        policy: r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "SeeInstances",
      "Effect": "Allow",
      "Action": ["ec2:DescribeInstances", "ec2:DescribeInstanceStatus", "ec2:DescribeTags"],
      "Resource": "*"
    },
    {
      "Sid": "StartStopTagged",
      "Effect": "Allow",
      "Action": ["ec2:StartInstances", "ec2:StopInstances", "ec2:RebootInstances"],
      "Resource": "arn:aws:ec2:*:*:instance/*",
      "Condition": {
        "StringEquals": {"aws:ResourceTag/Team": "TEAM"}
      }
    }
  ]
}"#,
    },
    Example {
        name: "cloudwatch-logs-read",
        description: "Read CloudWatch Logs in one log group prefix: replace /app/ with the prefix.",
        policy: r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": ["logs:DescribeLogGroups"],
      "Resource": "*"
    },
    {
      "Effect": "Allow",
      "Action": [
        "logs:DescribeLogStreams", "logs:GetLogEvents", "logs:FilterLogEvents",
        "logs:StartQuery", "logs:GetQueryResults"
      ],
      "Resource": "arn:aws:logs:*:*:log-group:/app/*"
    }
  ]
}"#,
    },
    Example {
        name: "deny-iam-changes",
        description: "Everything except changing IAM (users, roles, policies, keys): for powerful but \
                      not privileged sessions.",
        policy: r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": "*",
      "Resource": "*"
    },
    {
      "Effect": "Deny",
      "Action": [
        "iam:Create*", "iam:Delete*", "iam:Put*", "iam:Update*", "iam:Attach*", "iam:Detach*",
        "iam:Add*", "iam:Remove*", "iam:Set*", "iam:PassRole", "organizations:*", "account:*"
      ],
      "Resource": "*"
    }
  ]
}"#,
    },
];

/// The policy examples route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

/// IAM policy examples for connectors and vends.
#[utoipa::path(
    get,
    path = "/api/v1/admin/policy-examples",
    tag = "admin",
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The examples", body = PolicyExampleList),
        AdminErrors,
    )
)]
async fn list(_admin: Admin) -> AdminResult<Json<PolicyExampleList>> {
    Ok(Json(PolicyExampleList {
        examples: EXAMPLES
            .iter()
            .map(|e| PolicyExample {
                name: e.name.to_owned(),
                description: e.description.to_owned(),
                policy: e.policy.to_owned(),
            })
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_passes_sts_limits_and_idfeds_checks() {
        assert!(EXAMPLES.len() >= 5);
        let mut names = std::collections::HashSet::new();
        for e in EXAMPLES {
            assert!(names.insert(e.name), "{} twice", e.name);
            idfed_sdk::iam::check_sts_limits(e.policy)
                .unwrap_or_else(|err| panic!("{}: {err}", e.name));
            crate::sts::validate::check_policy(e.policy)
                .unwrap_or_else(|err| panic!("{}: {err}", e.name));
            serde_json::from_str::<serde_json::Value>(e.policy).unwrap();
        }
        let all: String = EXAMPLES.iter().map(|e| e.policy).collect();
        for wanted in ["BUCKET", "aws:RequestedRegion", "aws:ResourceTag/"] {
            assert!(all.contains(wanted), "{wanted}");
        }
    }
}
