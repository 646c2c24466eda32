// The OpenAI Node SDK against the Cocoon client proxy (TestOpenAINPM):
// a whole and a streamed chat completion and the model list, exactly as an
// application would call them. Prints one JSON object for the Go test.
//
// usage: node openai_client.mjs BASE_URL MODEL
import OpenAI from 'openai';

const [baseURL, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: 'unused', maxRetries: 0 });
const messages = [{ role: 'user', content: 'Once upon a time' }];

const models = await client.models.list();
const ids = [];
for await (const m of models) ids.push(m.id);

const { data: whole, response } = await client.chat.completions
  .create({ model, messages, max_tokens: 12, temperature: 0 })
  .withResponse();

const stream = await client.chat.completions.create({
  model, messages, max_tokens: 12, temperature: 0, stream: true,
  stream_options: { include_usage: true },
});
let chunks = 0;
let text = '';
let usage = null;
for await (const chunk of stream) {
  chunks++;
  text += chunk.choices[0]?.delta?.content ?? '';
  if (chunk.usage) usage = chunk.usage;
}

let notFound = null;
try {
  await client.chat.completions.create({ model: 'no-such-model', messages, max_tokens: 4 });
} catch (e) {
  notFound = { status: e.status, code: e.code ?? null, isAPIError: e instanceof OpenAI.APIError };
}

console.log(JSON.stringify({
  models: ids,
  whole: {
    object: whole.object,
    content: whole.choices[0].message.content,
    usage: whole.usage,
    worker: response.headers.get('x-cocoon-worker'),
  },
  stream: { chunks, text, usage },
  notFound,
}));
