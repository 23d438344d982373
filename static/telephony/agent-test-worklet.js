/* The microphone's samples for an agent test: each block of the input (mono, at the audio context's
   rate) is posted to the page, which turns it into 16 kHz 16-bit PCM for the test socket. */
class AgentTestCapture extends AudioWorkletProcessor {
  process(inputs) {
    var input = inputs[0];
    if (input && input[0] && input[0].length) this.port.postMessage(input[0].slice(0));
    return true;
  }
}
registerProcessor("agent-test-capture", AgentTestCapture);
