/**
 * Names of the linear layers LoRA can target, per `model_type` in a model's config.json, read from the
 * Hugging Face transformers modeling code (the module attribute names peft matches against `target_modules`).
 * A target matches when a module's dotted path equals it or ends with `.<target>`, so only the last segment of
 * a dotted target is checked here.
 *
 * | model_type | attention | MLP | output |
 * |---|---|---|---|
 * | phi | q_proj k_proj v_proj dense | fc1 fc2 | lm_head |
 * | phi3 | qkv_proj o_proj | gate_up_proj down_proj | lm_head |
 * | llama, mistral, qwen2, gemma, gemma2 | q_proj k_proj v_proj o_proj | gate_proj up_proj down_proj | lm_head |
 * | mixtral | q_proj k_proj v_proj o_proj | w1 w2 w3 gate (router) | lm_head |
 * | gpt2 | c_attn c_proj (Conv1D) | c_fc c_proj | lm_head |
 * | gpt_neox | query_key_value dense | dense_h_to_4h dense_4h_to_h | embed_out |
 * | falcon | query_key_value dense | dense_h_to_4h dense_4h_to_h | lm_head |
 */
const LLAMA = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj', 'lm_head'];

export const LINEAR_LAYERS: Readonly<Record<string, readonly string[]>> = {
  phi: ['q_proj', 'k_proj', 'v_proj', 'dense', 'fc1', 'fc2', 'lm_head'],
  phi3: ['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj', 'lm_head'],
  llama: LLAMA,
  mistral: LLAMA,
  qwen2: LLAMA,
  gemma: LLAMA,
  gemma2: LLAMA,
  mixtral: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'w1', 'w2', 'w3', 'gate', 'lm_head'],
  gpt2: ['c_attn', 'c_proj', 'c_fc', 'lm_head'],
  gpt_neox: ['query_key_value', 'dense', 'dense_h_to_4h', 'dense_4h_to_h', 'embed_out'],
  falcon: ['query_key_value', 'dense', 'dense_h_to_4h', 'dense_4h_to_h', 'lm_head'],
};

/** peft's shorthand for every linear layer but the output head. */
export const ALL_LINEAR = 'all-linear';
