/** A ResolvedConfig as YAML, keys in the schema's order, so a run's config.yaml diffs cleanly against another. */
import { stringify } from 'yaml';
import type { ResolvedConfig } from '../../../protocol/config';
import schema from '../../../schemas/finetune.schema.json';

interface SchemaNode {
  properties?: Record<string, SchemaNode>;
}

export function configToYaml(config: ResolvedConfig, header?: string): string {
  const ordered = order(config, schema as SchemaNode);
  const body = stringify(ordered, { lineWidth: 0 });
  return header ? `${header.replace(/^/gm, '# ')}\n${body}` : body;
}

function order(value: unknown, node: SchemaNode | undefined): unknown {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || !node?.properties) return value;
  const input = value as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(node.properties)) {
    if (key in input) out[key] = order(input[key], node.properties[key]);
  }
  for (const key of Object.keys(input)) if (!(key in out)) out[key] = input[key];
  return out;
}
